package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshnode/meshnode/ca"
)

func cmdCA(e env, args []string) error {
	if len(args) == 0 {
		return usageError("ca needs a command: init, sign, revoke or renew")
	}
	switch args[0] {
	case "init":
		return cmdCAInit(e, args[1:])
	case "sign":
		return cmdCASign(e, args[1:])
	case "revoke":
		return cmdCARevoke(e, args[1:])
	case "renew":
		return cmdCARenew(e, args[1:])
	}
	return usageError(fmt.Sprintf("unknown command 'ca %s'", args[0]))
}

func caFlagSet(e env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("meshkit ca "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dir := fs.String("ca", envOr(e, "MESHNODE_CA", ""), "the CA directory ($MESHNODE_CA)")
	return fs, dir
}

func openCA(e env, dir string) (*ca.CA, error) {
	if dir == "" {
		return nil, usageError("--ca DIR is required")
	}
	c, err := ca.Open(dir)
	if err != nil {
		return nil, err
	}
	c.Now = e.now
	return c, nil
}

func cmdCAInit(e env, args []string) error {
	fs := flag.NewFlagSet("meshkit ca init", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	def := ca.DefaultPlan()
	name := fs.String("name", "meshnode", "community name on the CA certificate and keys")
	network := fs.String("network", def.Network.String(), "the overlay network")
	pools := map[string]*string{}
	for _, r := range ca.Roles {
		pools[r] = fs.String(r, def.Pools[r].String(), "address pool for role "+r)
	}
	var lhs []string
	fs.Func("lighthouse", "ADDR=HOST:PORT[,HOST:PORT]: a lighthouse's overlay address and public endpoints (repeatable)", func(s string) error {
		lhs = append(lhs, s)
		return nil
	})
	years := fs.Int("years", 5, "CA lifetime in years")
	days := fs.Int("cert-days", 365, "node certificate lifetime in days")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("ca init needs exactly one directory")
	}
	plan := ca.Plan{Pools: map[string]netip.Prefix{}}
	var err error
	if plan.Network, err = netip.ParsePrefix(*network); err != nil {
		return fmt.Errorf("--network %q: %v", *network, err)
	}
	for r, v := range pools {
		if plan.Pools[r], err = netip.ParsePrefix(*v); err != nil {
			return fmt.Errorf("--%s %q: %v", r, *v, err)
		}
	}
	var lighthouses []ca.Lighthouse
	for _, s := range lhs {
		a, eps, ok := strings.Cut(s, "=")
		addr, err := netip.ParseAddr(a)
		if !ok || err != nil || eps == "" {
			return fmt.Errorf("--lighthouse %q: want ADDR=HOST:PORT, e.g. 10.0.4.1=hub.example.net:4242", s)
		}
		lighthouses = append(lighthouses, ca.Lighthouse{Address: addr, Endpoints: strings.Split(eps, ",")})
	}
	dir := fs.Arg(0)
	fps, err := ca.Init(dir, ca.InitOptions{Name: *name, Plan: plan, Lighthouses: lighthouses,
		CAValidity: time.Duration(*years) * 365 * 24 * time.Hour, CertDays: *days, Now: e.now()})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "CA created in %s (every file 0600; keep this directory offline)\n\n%s\n"+
		"Read every fingerprint aloud at the ceremony; nodes check the Nebula CA one on import\n"+
		"(meshnode enroll --import DIR --ca-fingerprint %s).\n"+
		"Sign a release with MESHNODE_USIGN_KEY=%s MESHNODE_PGP_KEY=%s make\n",
		dir, fps, fps.NebulaCA, filepath.Join(dir, ca.UsignSec), filepath.Join(dir, ca.PGPSec))
	return nil
}

func cmdCASign(e env, args []string) error {
	fs, dir := caFlagSet(e, "sign")
	out := fs.String("out", "", "also write NAME/{node.crt,ca.crt,lighthouses} under this directory (e.g. the USB drive)")
	yes := fs.Bool("yes", false, "do not ask to confirm the key fingerprint (only when it was compared another way)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("ca sign needs at least one request file")
	}
	c, err := openCA(e, *dir)
	if err != nil {
		return err
	}
	bad := false
	for _, p := range fs.Args() {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		req, err := ca.ParseRequest(data)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", p, err)
			bad = true
			continue
		}
		if !*yes {
			fmt.Fprintf(e.stdout, "%s: %s (%s) key %s\n", p, req.Name, req.Role, req.Fingerprint())
		}
		iss, err := c.Sign(req)
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", p, err)
			bad = true
			continue
		}
		if *out != "" {
			if err := iss.WriteTo(filepath.Join(*out, iss.Name)); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "signed %s: %s, valid until %s, certificate %s\n", iss.Name, iss.Address,
			iss.NotAfter.UTC().Format(time.DateOnly), iss.Fingerprint)
	}
	if bad {
		return failed{}
	}
	return nil
}

func cmdCARevoke(e env, args []string) error {
	fs, dir := caFlagSet(e, "revoke")
	reason := fs.String("reason", "", "why, for the ledger (lost, stolen, replaced...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("ca revoke needs a node name")
	}
	c, err := openCA(e, *dir)
	if err != nil {
		return err
	}
	for _, n := range fs.Args() {
		if err := c.Revoke(n, *reason); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked %s; export a bundle to carry the new blocklist (%s)\n", n, filepath.Join(*dir, ca.Blocklist))
	}
	return nil
}

func cmdCARenew(e env, args []string) error {
	fs, dir := caFlagSet(e, "renew")
	within := fs.Duration("expiring", 0, "renew every node whose certificate ends within this duration (e.g. 720h)")
	out := fs.String("out", "", "also write NAME/{node.crt,ca.crt,lighthouses} under this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := openCA(e, *dir)
	if err != nil {
		return err
	}
	names := fs.Args()
	if *within > 0 {
		names = append(names, c.Expiring(*within)...)
	}
	if len(names) == 0 {
		if *within > 0 {
			fmt.Fprintln(e.stdout, "no certificate expires within", *within)
			return nil
		}
		return usageError("ca renew needs node names or --expiring DURATION")
	}
	for _, n := range names {
		iss, err := c.Renew(n)
		if err != nil {
			return err
		}
		if *out != "" {
			if err := iss.WriteTo(filepath.Join(*out, iss.Name)); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "renewed %s: %s, valid until %s\n", iss.Name, iss.Address, iss.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

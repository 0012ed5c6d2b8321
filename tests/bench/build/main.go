// Command bench measures the build system and prints a table (`make bench`).
//
// Ratios are measured side by side in one run, alternating ours and the
// reference, because the machines are shared and noisy:
//   - packaging overhead: a whole `meshkit build` (compile, pack, index,
//     sign, verify, publish) against the same `go build` commands alone,
//     both with a warm Go cache;
//   - index and sign time for one whole feed;
//   - sizes per package and architecture.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/internal/build"
	"github.com/meshnode/meshnode/internal/manifest"
)

func main() {
	rounds := flag.Int("rounds", 3, "alternating rounds of ours and the reference")
	root := flag.String("root", ".", "repository root")
	arches := flag.String("arch", "all", "architectures")
	flag.Parse()
	if err := run(*root, *arches, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(root, arches string, rounds int) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "meshnode-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	targets, err := build.SelectTargets(arches)
	if err != nil {
		return err
	}
	keys, err := build.LoadKeys(build.KeySource{}, filepath.Join(tmp, "keys"), io.Discard)
	if err != nil {
		return err
	}
	cfg := build.Config{Root: root, BinDir: filepath.Join(tmp, "out", "bin"), FeedDir: filepath.Join(tmp, "out", "feed"),
		Targets: targets, Epoch: time.Unix(1700000000, 0), FeedName: "meshnode", FeedURL: "http://10.0.4.1/feed", Keys: keys,
		CacheDir: filepath.Join(tmp, "out", "cache", "ipk")}
	cold := cfg
	cold.CacheDir = ""
	ms, err := manifest.LoadAll(root)
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "bench: warming the Go build cache ...")
	res, err := build.Build(ctx, cfg)
	if err != nil {
		return err
	}
	var ours, fresh, ref []time.Duration
	for i := 0; i < rounds; i++ {
		fmt.Fprintf(os.Stderr, "bench: round %d/%d\n", i+1, rounds)
		start := time.Now()
		if _, err := build.Compile(ctx, cfg, ms, filepath.Join(tmp, fmt.Sprintf("ref%d", i))); err != nil {
			return err
		}
		ref = append(ref, time.Since(start))
		start = time.Now()
		if res, err = build.Build(ctx, cfg); err != nil {
			return err
		}
		ours = append(ours, time.Since(start))
		start = time.Now()
		if _, err = build.Build(ctx, cold); err != nil {
			return err
		}
		fresh = append(fresh, time.Since(start))
	}
	mo, mr, mf := median(ours), median(ref), median(fresh)
	overhead := (mo.Seconds() - mr.Seconds()) / mr.Seconds() * 100
	overheadFresh := (mf.Seconds() - mr.Seconds()) / mr.Seconds() * 100

	// Index and sign one feed (the first architecture), from its ipks.
	arch := targets[0].Arch
	var entries []index.Entry
	for _, p := range res.Packages[arch] {
		data, err := os.ReadFile(p.File)
		if err != nil {
			return err
		}
		entries = append(entries, index.Entry{FileName: filepath.Base(p.File), Data: data})
	}
	var sign []time.Duration
	for i := 0; i < 5; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("sign%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		start := time.Now()
		if err := build.WriteFeed(cfg, dir, arch, entries); err != nil {
			return err
		}
		sign = append(sign, time.Since(start))
	}
	ms2 := median(sign)

	fmt.Printf("\n## meshnode build benchmarks (%d architectures, %d rounds, medians)\n\n", len(targets), rounds)
	fmt.Println("| measure | ours | reference | result | target |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| make, warm Go and ipk caches, vs go build alone | %.2f s | %.2f s | %+.1f %% | <= +10 %% %s |\n",
		mo.Seconds(), mr.Seconds(), overhead, pass(overhead <= 10))
	fmt.Printf("| make, warm Go cache, every ipk packed afresh (--no-cache) | %.2f s | %.2f s | %+.1f %% | (informative) |\n",
		mf.Seconds(), mr.Seconds(), overheadFresh)
	fmt.Printf("| index + sign one feed (%s, %d ipks, %s) | %.3f s | - | - | < 1 s %s |\n",
		arch, len(entries), human(total(entries)), ms2.Seconds(), pass(ms2 < time.Second))
	fmt.Printf("\nrounds: ours %s; --no-cache %s; go build %s; index+sign %s\n\n", durs(ours), durs(fresh), durs(ref), durs(sign))

	fmt.Println("| package | arch | raw binaries | ipk | ipk/raw |")
	fmt.Println("|---|---|---|---|---|")
	var archNames []string
	for a := range res.Packages {
		archNames = append(archNames, a)
	}
	sort.Strings(archNames)
	for _, a := range archNames {
		for _, p := range res.Packages[a] {
			ratio := "-"
			if p.RawSize > 0 {
				ratio = fmt.Sprintf("%.1f %%", float64(p.Size)/float64(p.RawSize)*100)
			}
			fmt.Printf("| %s | %s | %s | %s | %s |\n", p.Name, a, human(p.RawSize), human(p.Size), ratio)
		}
	}
	return nil
}

func total(es []index.Entry) int64 {
	var n int64
	for _, e := range es {
		n += int64(len(e.Data))
	}
	return n
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func durs(d []time.Duration) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, fmt.Sprintf("%.2fs", x.Seconds()))
	}
	return strings.Join(parts, " ")
}

func pass(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(NOT met)"
}

func human(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB (%d)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d B", n)
}

package shape

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The fingerprints below reduce kernel objects to the fields the shaper
// sets, in a form that is equal for the desired object and the kernel's
// read-back when nothing needs changing.

func classFP(c TCClass) string {
	if c.Kind != "htb" {
		return "kind=" + c.Kind
	}
	p := c.HTB
	if c.Handle == rootClassID() {
		// HTB sets quantum and prio of leaf classes only; 1:1 keeps those
		// it had when created, before it had children.
		p.Quantum, p.Prio = 0, 0
	}
	return fmt.Sprintf("parent=%x rate=%d ceil=%d buf=%d cbuf=%d q=%d prio=%d oh=%d/%d mpu=%d/%d ll=%d/%d",
		c.Parent, p.Rate.Rate, p.Ceil.Rate, p.Buffer, p.Cbuffer, p.Quantum, p.Prio,
		p.Rate.Overhead, p.Ceil.Overhead, p.Rate.MPU, p.Ceil.MPU, p.Rate.Linklayer, p.Ceil.Linklayer)
}

func rootOK(q Qdisc) bool {
	return q.Kind == "htb" && q.Handle == rootHandle() && q.Defcls == 0x30
}

func leafFP(q Qdisc) string {
	s := fmt.Sprintf("%s %x", q.Kind, q.Handle)
	if q.Kind == "pfifo" || q.Kind == "bfifo" {
		s += fmt.Sprintf(" limit=%d", q.Limit)
	}
	return s
}

// filterFP is "" for objects that are not a filter the shaper could have
// made (u32 hash-table nodes, other kinds are reported by kind so they
// count as a difference).
func filterFP(f Filter) string {
	if f.Kind != "u32" {
		return "kind=" + f.Kind
	}
	u := f.U32
	if u == nil {
		return "" // the hash table the kernel adds per priority
	}
	var b strings.Builder
	fmt.Fprintf(&b, "proto=%04x", f.Protocol)
	if u.ClassID != 0 {
		fmt.Fprintf(&b, " class=%x", u.ClassID)
	}
	for _, k := range u.Keys {
		fmt.Fprintf(&b, " %d:%08x/%08x", k.Off, k.Val, k.Mask)
	}
	if u.Mark != (U32Mark{}) {
		fmt.Fprintf(&b, " mark=%x/%x", u.Mark.Val, u.Mark.Mask)
	}
	for _, a := range u.Actions {
		fmt.Fprintf(&b, " act=%s", a.Kind)
		if a.Kind == "mirred" {
			fmt.Fprintf(&b, "/%d/%d/%d", a.Eaction, a.Ifindex, a.Verdict)
		}
	}
	return b.String()
}

// byPrio groups filter fingerprints by priority, sorted within a priority.
func byPrio(fs []Filter) map[uint16][]string {
	m := map[uint16][]string{}
	for _, f := range fs {
		if fp := filterFP(f); fp != "" {
			m[f.Prio] = append(m[f.Prio], fp)
		}
	}
	for _, v := range m {
		slices.Sort(v)
	}
	return m
}

// syncFilters makes the filters under parent equal to want, one priority
// at a time: a priority that differs is deleted and re-added whole.
func syncFilters(k Kernel, ifindex, parent uint32, want []Filter, fresh bool) (int, error) {
	var have map[uint16][]string
	kinds := map[uint16]string{}
	if !fresh {
		cur, err := k.Filters(ifindex, parent)
		if err != nil {
			return 0, fmt.Errorf("read filters: %w", err)
		}
		have = byPrio(cur)
		for _, f := range cur {
			kinds[f.Prio] = f.Kind
		}
	}
	wantBy := byPrio(want)
	prios := map[uint16]bool{}
	for p := range have {
		prios[p] = true
	}
	for p := range wantBy {
		prios[p] = true
	}
	changes := 0
	for _, p := range slices.Sorted(maps.Keys(prios)) {
		if slices.Equal(have[p], wantBy[p]) {
			continue
		}
		if _, ok := have[p]; ok {
			// The kernel wants the kind of what it deletes.
			del := Filter{Ifindex: ifindex, Parent: parent, Prio: p, Kind: kinds[p]}
			if err := k.DeleteFilter(&del); err != nil && !errors.Is(err, unix.ENOENT) {
				return changes, fmt.Errorf("delete filters at pref %d: %w", p, err)
			}
			changes++
		}
		for i := range want {
			if want[i].Prio != p {
				continue
			}
			if err := k.AddFilter(&want[i]); err != nil {
				return changes, fmt.Errorf("add filter at pref %d (%s): %w", p, filterFP(want[i]), err)
			}
			changes++
		}
	}
	return changes, nil
}

// leafChooser picks the first leaf kind the kernel accepts and remembers
// refusals, so the preference list is probed once per shaper.
type leafChooser struct {
	unsupported map[string]bool
	warned      map[string]bool
}

// unknownKind reports whether err means the kernel lacks the qdisc.
func unknownKind(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}

// syncTree makes one device's egress HTB tree equal to t. It returns the
// number of kernel changes and the leaf kind in use.
func (s *Shaper) syncTree(t tree, leaves []string) (int, string, error) {
	k := s.k
	qs, err := k.Qdiscs(t.Ifindex)
	if err != nil {
		return 0, "", fmt.Errorf("%s: read qdiscs: %w", t.Dev, err)
	}
	changes := 0
	fresh := true
	for _, q := range qs {
		if q.Parent != tcHRoot {
			continue
		}
		if rootOK(q) {
			fresh = false
		} else if q.Handle == rootHandle() {
			// The kernel refuses to replace a qdisc by one of another kind
			// under the same handle ("Invalid qdisc name"): remove it first.
			if err := k.DeleteQdisc(&q); err != nil && !errors.Is(err, unix.ENOENT) {
				return 0, "", fmt.Errorf("%s: remove foreign root qdisc %s: %w", t.Dev, q.Kind, err)
			}
			changes++
		}
	}
	if fresh {
		if err := k.ReplaceQdisc(&t.Root); err != nil {
			return 0, "", fmt.Errorf("%s: install root htb: %w", t.Dev, err)
		}
		changes++
		qs = nil
	}
	have := map[uint32]string{}
	if !fresh {
		cs, err := k.Classes(t.Ifindex)
		if err != nil {
			return changes, "", fmt.Errorf("%s: read classes: %w", t.Dev, err)
		}
		for _, c := range cs {
			have[c.Handle] = classFP(c)
		}
	}
	for i := range t.Classes {
		c := &t.Classes[i]
		if have[c.Handle] == classFP(*c) {
			continue
		}
		if err := k.ReplaceClass(c); err != nil {
			return changes, "", fmt.Errorf("%s: set class %x: %w", t.Dev, c.Handle, err)
		}
		changes++
	}
	n, err := syncFilters(k, t.Ifindex, rootHandle(), t.Filters, fresh)
	changes += n
	if err != nil {
		return changes, "", fmt.Errorf("%s: %w", t.Dev, err)
	}

	kind := ""
	for _, cand := range leaves {
		if !s.leaves.unsupported[cand] {
			kind = cand
			break
		}
	}
	for i := range 3 {
		var cur *Qdisc
		for j := range qs {
			if qs[j].Parent == classID(i) {
				cur = &qs[j]
			}
		}
		for kind != "" {
			want := leafQdisc(kind, t.Ifindex, i, t.LeafCeil[i])
			if cur != nil && leafFP(*cur) == leafFP(want) {
				break
			}
			if cur != nil && cur.Handle == want.Handle && cur.Kind != want.Kind {
				// Same handle, other kind: the kernel will not replace it in place.
				if err := k.DeleteQdisc(cur); err != nil && !errors.Is(err, unix.ENOENT) {
					return changes, kind, fmt.Errorf("%s: remove leaf %s: %w", t.Dev, cur.Kind, err)
				}
				changes++
				cur = nil
			}
			err := k.ReplaceQdisc(&want)
			if err == nil {
				changes++
				break
			}
			if !unknownKind(err) {
				return changes, kind, fmt.Errorf("%s: set leaf %s of class %x: %w", t.Dev, kind, classID(i), err)
			}
			s.leaves.unsupported[kind] = true
			next := ""
			for _, cand := range leaves {
				if !s.leaves.unsupported[cand] {
					next = cand
					break
				}
			}
			kind = next
		}
		if kind == "" {
			return changes, "", fmt.Errorf("%s: the kernel has none of the leaf qdiscs %s", t.Dev, strings.Join(leaves, ", "))
		}
	}
	if kind != leaves[0] && !s.leaves.warned[strings.Join(leaves, " ")] {
		s.leaves.warned[strings.Join(leaves, " ")] = true
		var missing []string
		for _, c := range leaves {
			if c == kind {
				break
			}
			missing = append(missing, c)
		}
		s.log.Warn("leaf qdisc unavailable in this kernel, falling back",
			"missing", strings.Join(missing, ","), "using", kind,
			"hint", "install kmod-sched-cake or a kernel with fq_codel for fair queueing")
	}
	return changes, kind, nil
}

// syncIngress redirects the device's ingress to the IFB.
func (s *Shaper) syncIngress(dev LinkInfo, ifb LinkInfo) (int, error) {
	k := s.k
	qs, err := k.Qdiscs(dev.Index)
	if err != nil {
		return 0, fmt.Errorf("%s: read qdiscs: %w", dev.Name, err)
	}
	changes := 0
	fresh := true
	for _, q := range qs {
		if q.Parent == tcHIngress && q.Kind == "ingress" {
			fresh = false
		}
	}
	if fresh {
		in := ingressQdisc(dev.Index)
		if err := k.ReplaceQdisc(&in); err != nil {
			return 0, fmt.Errorf("%s: add ingress qdisc: %w", dev.Name, err)
		}
		changes++
	}
	n, err := syncFilters(k, dev.Index, ingressHandle, []Filter{redirectFilter(dev.Index, ifb.Index)}, fresh)
	if err != nil {
		return changes + n, fmt.Errorf("%s: redirect to %s: %w", dev.Name, ifb.Name, err)
	}
	return changes + n, nil
}

// removeRoot deletes the device's root qdisc if it is the shaper's.
func (s *Shaper) removeRoot(dev string) error {
	li, err := s.k.Link(dev)
	if errors.Is(err, ErrNoDevice) {
		return nil
	}
	if err != nil {
		return err
	}
	qs, err := s.k.Qdiscs(li.Index)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Parent == tcHRoot && rootOK(q) {
			if err := s.k.DeleteQdisc(&q); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("%s: delete root qdisc: %w", dev, err)
			}
		}
	}
	return nil
}

// removeIngress deletes the ingress qdisc of dev and the IFB.
func (s *Shaper) removeIngress(dev, ifb string) error {
	var errs []error
	if li, err := s.k.Link(dev); err == nil {
		qs, err := s.k.Qdiscs(li.Index)
		errs = append(errs, err)
		for _, q := range qs {
			if q.Parent == tcHIngress && q.Kind == "ingress" {
				if err := s.k.DeleteQdisc(&q); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("%s: delete ingress qdisc: %w", dev, err))
				}
			}
		}
	} else if !errors.Is(err, ErrNoDevice) {
		errs = append(errs, err)
	}
	if ifb != "" {
		if li, err := s.k.Link(ifb); err == nil {
			if err := s.k.DeleteLink(li.Index); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", ifb, err))
			}
		} else if !errors.Is(err, ErrNoDevice) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

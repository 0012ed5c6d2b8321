package shape

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/meshnode/meshnode/internal/errfmt"
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
	// HTBClass holds just the fields the shaper sets.
	return fmt.Sprintf("parent=%x %+v", c.Parent, p)
}

func rootOK(q Qdisc) bool {
	return q.Kind == "htb" && q.Handle == rootHandle() && q.Defcls == 0x30
}

// sameLeaf reports whether leaf qdisc a is b as far as the shaper sets it.
func sameLeaf(a, b *Qdisc) bool {
	return a.Kind == b.Kind && a.Handle == b.Handle &&
		(a.Kind != "pfifo" && a.Kind != "bfifo" || a.Limit == b.Limit)
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
			return 0, errfmt.Errorf("read filters: %w", err)
		}
		have = byPrio(cur)
		for _, f := range cur {
			kinds[f.Prio] = f.Kind
		}
	}
	wantBy := byPrio(want)
	// Sorted as ints: a sort of uint16 would be the binary's only one.
	var prios []int
	for p := range have {
		prios = append(prios, int(p))
	}
	for p := range wantBy {
		if _, ok := have[p]; !ok {
			prios = append(prios, int(p))
		}
	}
	slices.Sort(prios)
	changes := 0
	for _, pi := range prios {
		p := uint16(pi)
		if slices.Equal(have[p], wantBy[p]) {
			continue
		}
		if _, ok := have[p]; ok {
			// The kernel wants the kind of what it deletes.
			del := Filter{Ifindex: ifindex, Parent: parent, Prio: p, Kind: kinds[p]}
			if err := k.DeleteFilter(&del); failed(err) {
				return changes, errfmt.Errorf("delete filters at pref %d: %w", p, err)
			}
			changes++
		}
		marked := false
		for i := range want {
			if want[i].Prio != p {
				continue
			}
			if err := k.AddFilter(&want[i]); err != nil {
				return changes, errfmt.Errorf("add filter at pref %d (%s): %w", p, filterFP(want[i]), err)
			}
			marked = marked || want[i].U32 != nil && want[i].U32.Mark != (U32Mark{})
			changes++
		}
		if marked {
			if err := checkMarks(k, ifindex, parent, p, wantBy[p]); err != nil {
				return changes, err
			}
		}
	}
	return changes, nil
}

// errNoMarks: a kernel built without CONFIG_CLS_U32_MARK takes a u32
// filter with a mark and silently drops the mark, leaving a filter that
// sends all traffic at its priority to the mark's class.
var errNoMarks = errors.New("this kernel ignores firewall marks in u32 filters (no CONFIG_CLS_U32_MARK): remove the _mark options")

// checkMarks reads back the filters just added at priority p, and removes
// them if the kernel dropped their marks (see errNoMarks).
func checkMarks(k Kernel, ifindex, parent uint32, p uint16, want []string) error {
	cur, err := k.Filters(ifindex, parent)
	if err != nil {
		return errfmt.Errorf("read filters: %w", err)
	}
	if slices.Equal(byPrio(cur)[p], want) {
		return nil
	}
	del := Filter{Ifindex: ifindex, Parent: parent, Prio: p, Kind: "u32"}
	if err := k.DeleteFilter(&del); failed(err) {
		return errfmt.Errorf("delete filters at pref %d: %w", p, err)
	}
	return errNoMarks
}

// leafChooser picks the first leaf kind the kernel accepts and remembers
// refusals, so the preference list is probed once per shaper.
type leafChooser struct {
	unsupported map[string]bool
	warned      map[string]bool
}

// first returns the first of leaves not known to be unsupported, or "".
//
//go:noinline
func (lc *leafChooser) first(leaves []string) string {
	for _, cand := range leaves {
		if !lc.unsupported[cand] {
			return cand
		}
	}
	return ""
}

// unknownKind reports whether err means the kernel lacks the qdisc.
func unknownKind(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}

// errList collects errors for errors.Join, dropping nil ones as Join
// would. Its methods are out of line: inlined appends and errors.Join
// cost up to half a kilobyte of MIPS code at each caller.
type errList []error

//go:noinline
func (e *errList) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

//go:noinline
func (e errList) join() error { return errors.Join(e...) }

// failed reports whether err is a real failure of a delete: the object
// being gone already is what the delete wanted. Not inlined: errors.Is
// against an errno costs flash at each caller.
//
//go:noinline
func failed(err error) bool {
	return err != nil && !errors.Is(err, unix.ENOENT)
}

// syncTree makes one device's egress HTB tree equal to t. It returns the
// number of kernel changes and the leaf kind in use. Errors start with
// the device name.
func (s *Shaper) syncTree(t *tree, leaves []string) (int, string, error) {
	n, kind, err := s.syncTreeOn(t, leaves)
	if err != nil {
		err = errfmt.Errorf("%s: %w", t.Dev, err)
	}
	return n, kind, err
}

func (s *Shaper) syncTreeOn(t *tree, leaves []string) (int, string, error) {
	k := s.k
	qs, err := k.Qdiscs(t.Ifindex)
	if err != nil {
		return 0, "", errfmt.Errorf("read qdiscs: %w", err)
	}
	changes := 0
	fresh := true
	for i := range qs {
		q := &qs[i]
		if q.Parent != tcHRoot {
			continue
		}
		if rootOK(*q) {
			fresh = false
		} else if q.Handle == rootHandle() {
			// The kernel refuses to replace a qdisc by one of another kind
			// under the same handle ("Invalid qdisc name"): remove it first.
			if err := k.DeleteQdisc(q); failed(err) {
				return 0, "", errfmt.Errorf("remove foreign root qdisc %s: %w", q.Kind, err)
			}
			changes++
		}
	}
	if fresh {
		if err := k.ReplaceQdisc(&t.Root); err != nil {
			return 0, "", errfmt.Errorf("install root htb: %w", err)
		}
		changes++
		qs = nil
	}
	have := map[uint32]string{}
	if !fresh {
		cs, err := k.Classes(t.Ifindex)
		if err != nil {
			return changes, "", errfmt.Errorf("read classes: %w", err)
		}
		for i := range cs {
			have[cs[i].Handle] = classFP(cs[i])
		}
	}
	for i := range t.Classes {
		c := &t.Classes[i]
		if have[c.Handle] == classFP(*c) {
			continue
		}
		if err := k.ReplaceClass(c); err != nil {
			return changes, "", errfmt.Errorf("set class %x: %w", c.Handle, err)
		}
		changes++
	}
	n, err := syncFilters(k, t.Ifindex, rootHandle(), t.Filters, fresh)
	changes += n
	if err != nil {
		return changes, "", err
	}

	kind := s.leaves.first(leaves)
	for i := range 3 {
		var cur *Qdisc
		for j := range qs {
			if qs[j].Parent == classID(i) {
				cur = &qs[j]
			}
		}
		for kind != "" {
			want := leafQdisc(kind, t.Ifindex, i, t.LeafCeil[i])
			if cur != nil && sameLeaf(cur, &want) {
				break
			}
			if cur != nil && cur.Handle == want.Handle && cur.Kind != want.Kind {
				// Same handle, other kind: the kernel will not replace it in place.
				if err := k.DeleteQdisc(cur); failed(err) {
					return changes, kind, errfmt.Errorf("remove leaf %s: %w", cur.Kind, err)
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
				return changes, kind, errfmt.Errorf("set leaf %s of class %x: %w", kind, classID(i), err)
			}
			s.leaves.unsupported[kind] = true
			kind = s.leaves.first(leaves)
		}
		if kind == "" {
			return changes, "", errfmt.Errorf("the kernel has none of the leaf qdiscs %s", strings.Join(leaves, ", "))
		}
	}
	if kind != leaves[0] {
		if pref := strings.Join(leaves, " "); !s.leaves.warned[pref] {
			s.leaves.warned[pref] = true
			missing := leaves[:slices.Index(leaves, kind)]
			s.log.Warn("leaf qdisc unavailable in this kernel, falling back",
				"missing", strings.Join(missing, ","), "using", kind,
				"hint", "install kmod-sched-cake or a kernel with fq_codel for fair queueing")
		}
	}
	return changes, kind, nil
}

// syncIngress redirects the device's ingress to the IFB.
func (s *Shaper) syncIngress(dev LinkInfo, ifb LinkInfo) (int, error) {
	k := s.k
	qs, err := k.Qdiscs(dev.Index)
	if err != nil {
		return 0, errfmt.Errorf("%s: read qdiscs: %w", dev.Name, err)
	}
	changes := 0
	fresh := true
	for i := range qs {
		if isIngress(&qs[i]) {
			fresh = false
		}
	}
	if fresh {
		in := ingressQdisc(dev.Index)
		if err := k.ReplaceQdisc(&in); err != nil {
			return 0, errfmt.Errorf("%s: add ingress qdisc: %w", dev.Name, err)
		}
		changes++
	}
	n, err := syncFilters(k, dev.Index, ingressHandle, []Filter{redirectFilter(dev.Index, ifb.Index)}, fresh)
	if err != nil {
		return changes + n, errfmt.Errorf("%s: redirect to %s: %w", dev.Name, ifb.Name, err)
	}
	return changes + n, nil
}

func isIngress(q *Qdisc) bool { return q.Parent == tcHIngress && q.Kind == "ingress" }
func isRoot(q *Qdisc) bool    { return q.Parent == tcHRoot && rootOK(*q) }

// deleteQdiscs deletes the qdiscs of dev that match (named what in
// errors). An absent device has none.
func (s *Shaper) deleteQdiscs(dev string, match func(*Qdisc) bool, what string) error {
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
	var errs errList
	for i := range qs {
		if match(&qs[i]) {
			if err := s.k.DeleteQdisc(&qs[i]); failed(err) {
				errs.add(errfmt.Errorf("%s: delete %s qdisc: %w", dev, what, err))
			}
		}
	}
	return errs.join()
}

// removeRoot deletes the device's root qdisc if it is the shaper's.
func (s *Shaper) removeRoot(dev string) error {
	return s.deleteQdiscs(dev, isRoot, "root")
}

// removeIngress deletes the ingress qdisc of dev and the IFB.
func (s *Shaper) removeIngress(dev, ifb string) error {
	var errs errList
	errs.add(s.deleteQdiscs(dev, isIngress, "ingress"))
	if ifb != "" {
		if li, err := s.k.Link(ifb); err == nil {
			if err := s.k.DeleteLink(li.Index); err != nil {
				errs.add(errfmt.Errorf("delete %s: %w", ifb, err))
			}
		} else if !errors.Is(err, ErrNoDevice) {
			errs.add(err)
		}
	}
	return errs.join()
}

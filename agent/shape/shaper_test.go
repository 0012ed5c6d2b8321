package shape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel keeps tc objects in memory and echoes them back as the
// kernel would (same fields as sent, stats added). It knows the qdisc
// kinds in has; others fail with ENOENT like a kernel without the module.
type fakeKernel struct {
	links   map[string]LinkInfo
	has     map[string]bool
	qdiscs  []Qdisc
	classes []TCClass
	filters []Filter
	calls   int
	noMarks bool // as a kernel without CONFIG_CLS_U32_MARK: marks are dropped
}

func newFake() *fakeKernel {
	return &fakeKernel{
		links: map[string]LinkInfo{"eth0": {Index: 2, Name: "eth0", MTU: 1500, Up: true}},
		has:   map[string]bool{"htb": true, "ingress": true, "bfifo": true, "pfifo": true},
	}
}

func (f *fakeKernel) Link(name string) (LinkInfo, error) {
	if li, ok := f.links[name]; ok {
		return li, nil
	}
	return LinkInfo{}, ErrNoDevice
}
func (f *fakeKernel) LinkSpeed(string) int64 { return 100000 }
func (f *fakeKernel) AddIFB(name string) (LinkInfo, error) {
	f.calls++
	li := LinkInfo{Index: uint32(10 + len(f.links)), Name: name, MTU: 1500, Up: true}
	f.links[name] = li
	return li, nil
}
func (f *fakeKernel) DeleteLink(index uint32) error {
	f.calls++
	for n, li := range f.links {
		if li.Index == index {
			delete(f.links, n)
			f.qdiscs = drop(f.qdiscs, func(o Qdisc) bool { return o.Ifindex == index })
			f.classes = drop(f.classes, func(o TCClass) bool { return o.Ifindex == index })
			f.filters = drop(f.filters, func(o Filter) bool { return o.Ifindex == index })
		}
	}
	return nil
}

func drop[T any](s []T, del func(T) bool) []T {
	var out []T
	for _, o := range s {
		if !del(o) {
			out = append(out, o)
		}
	}
	return out
}

func (f *fakeKernel) Qdiscs(i uint32) ([]Qdisc, error) {
	return drop(f.qdiscs, func(o Qdisc) bool { return o.Ifindex != i }), nil
}
func (f *fakeKernel) Classes(i uint32) ([]TCClass, error) {
	return drop(f.classes, func(o TCClass) bool { return o.Ifindex != i }), nil
}
func (f *fakeKernel) Filters(i, parent uint32) ([]Filter, error) {
	return drop(f.filters, func(o Filter) bool { return o.Ifindex != i || o.Parent != parent }), nil
}

func (f *fakeKernel) ReplaceQdisc(o *Qdisc) error {
	f.calls++
	if !f.has[o.Kind] {
		return fmt.Errorf("netlink receive: %w", unix.ENOENT)
	}
	if o.Parent == tcHRoot {
		// A new root takes the old tree with it.
		f.qdiscs = drop(f.qdiscs, func(q Qdisc) bool { return q.Ifindex == o.Ifindex && q.Parent != tcHIngress })
		f.classes = drop(f.classes, func(q TCClass) bool { return q.Ifindex == o.Ifindex })
		f.filters = drop(f.filters, func(q Filter) bool { return q.Ifindex == o.Ifindex && q.Parent != ingressHandle })
	}
	f.qdiscs = drop(f.qdiscs, func(q Qdisc) bool { return q.Ifindex == o.Ifindex && q.Parent == o.Parent })
	f.qdiscs = append(f.qdiscs, *o)
	return nil
}
func (f *fakeKernel) DeleteQdisc(o *Qdisc) error {
	f.calls++
	f.qdiscs = drop(f.qdiscs, func(q Qdisc) bool { return q.Ifindex == o.Ifindex && q.Handle == o.Handle })
	// Deleting a root or ingress qdisc takes what hangs below it.
	if o.Parent == tcHRoot {
		f.qdiscs = drop(f.qdiscs, func(q Qdisc) bool { return q.Ifindex == o.Ifindex && q.Parent != tcHIngress })
		f.classes = drop(f.classes, func(q TCClass) bool { return q.Ifindex == o.Ifindex })
	}
	f.filters = drop(f.filters, func(q Filter) bool {
		return q.Ifindex == o.Ifindex && (q.Parent == ingressHandle) == (o.Parent == tcHIngress)
	})
	return nil
}
func (f *fakeKernel) ReplaceClass(o *TCClass) error {
	f.calls++
	c := *o
	c.Stats = Stats{Bytes: 1000, Packets: 10, Drops: 1}
	f.classes = drop(f.classes, func(q TCClass) bool { return q.Ifindex == o.Ifindex && q.Handle == o.Handle })
	f.classes = append(f.classes, c)
	return nil
}
func (f *fakeKernel) DeleteClass(o *TCClass) error { f.calls++; return nil }
func (f *fakeKernel) AddFilter(o *Filter) error {
	f.calls++
	fl := *o
	if f.noMarks && fl.U32 != nil {
		u := *fl.U32
		u.Mark = U32Mark{}
		fl.U32 = &u
	}
	f.filters = append(f.filters, fl)
	return nil
}
func (f *fakeKernel) DeleteFilter(o *Filter) error {
	f.calls++
	f.filters = drop(f.filters, func(q Filter) bool {
		return q.Ifindex == o.Ifindex && q.Parent == o.Parent && q.Prio == o.Prio
	})
	return nil
}
func (f *fakeKernel) Events(ctx context.Context) (<-chan Event, error) {
	return nil, fmt.Errorf("no events in the fake")
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                       { return c.t }
func (c fixedClock) After(time.Duration) <-chan time.Time { return nil }

// A kernel that drops the mark of a u32 filter would send all traffic at
// that priority to the mark's class: the filter is taken out again and
// the error names the options to remove.
func TestMarksIgnoredByKernel(t *testing.T) {
	cfg, err := parseText(t, base+"\toption upload '20000'\n\tlist bulk_mark '0x10/0xff'\n")
	if err != nil {
		t.Fatal(err)
	}
	k := newFake()
	k.noMarks = true
	s := New(k, fixedClock{time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err = s.Apply(context.Background(), cfg)
	if !errors.Is(err, errNoMarks) || !strings.Contains(err.Error(), "_mark") {
		t.Fatalf("Apply = %v, want the no-marks error", err)
	}
	for _, f := range k.filters {
		if f.U32 != nil && len(f.U32.Keys) == 1 && f.U32.Keys[0].Mask == 0 {
			t.Fatalf("a match-all filter was left behind: %+v", f)
		}
	}
	// With mark support the same configuration applies.
	k = newFake()
	s = New(k, fixedClock{time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func TestApplyOnlyTheDifference(t *testing.T) {
	k := newFake()
	var logs bytes.Buffer
	s := New(k, fixedClock{time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}, slog.New(slog.NewTextHandler(&logs, nil)))
	cfg, err := parseText(t, base+"\toption upload '20000'\n\toption download '50000'\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	first := k.calls
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if k.calls != first || s.Status().LastChanges != 0 {
		t.Fatalf("second apply made %d calls, %d changes", k.calls-first, s.Status().LastChanges)
	}
	// fq_codel, cake and sfq are refused once each, then bfifo is used;
	// the warning is logged once.
	if n := strings.Count(logs.String(), "falling back"); n != 1 {
		t.Errorf("%d fallback warnings", n)
	}
	st := s.Status()
	if st.Links[0].Leaf != "bfifo" || len(st.Links[0].Trees) != 2 || st.Links[0].Trees[1].Device != "ifb4eth0" {
		t.Fatalf("status %+v", st)
	}

	// A changed rate touches only the classes (and the FIFO sizes).
	cfg2, _ := parseText(t, base+"\toption upload '30000'\n\toption download '50000'\n")
	before := k.calls
	if err := s.Apply(context.Background(), cfg2); err != nil {
		t.Fatal(err)
	}
	if n := k.calls - before; n != 7 { // 4 classes + 3 leaves on the upload side
		t.Errorf("rate change made %d kernel calls, want 7", n)
	}

	// Rejected: above link speed (the fake says 100 Mbit/s); nothing changes.
	bad, _ := parseText(t, base+"\toption upload '300000'\n")
	before = k.calls
	err = s.Apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `option "upload": 300000 kbit/s is above the link speed of 100000 kbit/s`) {
		t.Fatalf("got %v", err)
	}
	if k.calls != before {
		t.Fatal("rejected config touched the kernel")
	}

	var prom bytes.Buffer
	if err := WriteMetrics(&prom, s.Status()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE meshnode_shape_class_bytes_total counter\n",
		`meshnode_shape_class_bytes_total{device="eth0",direction="upload",class="emergency"} 1000` + "\n",
		`meshnode_shape_class_rate_bits{device="eth0",direction="download",class="bulk"} 3e+07` + "\n",
		`meshnode_shape_limit_bits{device="eth0",direction="upload",window="default",leaf="bfifo"} 30000000` + "\n",
		"meshnode_shape_ok 0\n", // the rejected config is the last error
	} {
		if !strings.Contains(prom.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, prom.String())
		}
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if len(k.qdiscs) != 0 || len(k.filters) != 0 {
		t.Fatalf("Stop left %d qdiscs, %d filters", len(k.qdiscs), len(k.filters))
	}
	if _, ok := k.links["ifb4eth0"]; ok {
		t.Fatal("Stop left the IFB")
	}
}

func TestUnknownDeviceRejected(t *testing.T) {
	s := New(newFake(), fixedClock{}, nil)
	cfg, _ := parseText(t, "config shape 'x'\n\toption device 'wwan0'\n\toption upload '1000'\n")
	err := s.Apply(context.Background(), cfg)
	want := `/etc/config/meshnode:2: section "x": option "device": unknown interface "wwan0"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestLabelEscaping(t *testing.T) {
	if got := label("a\"b\\c\nd"); got != `"a\"b\\c\nd"` {
		t.Fatal(got)
	}
}

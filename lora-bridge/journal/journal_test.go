package journal

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/meshnode/meshnode/lora-bridge/message"
)

func msg(i int) message.Message {
	return message.Message{Key: message.Key{Origin: 7, ID: uint32(i + 1)}, Kind: message.Text, RadioID: uint32(1000 + i), Body: fmt.Sprintf("message %d", i)}
}

func TestAcceptDoneReopenDedup(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if dup, err := j.Accept(msg(i), []string{"radio", "peer:b"}); dup || err != nil {
			t.Fatal(dup, err)
		}
	}
	for i := 0; i < 5; i++ {
		j.Done(msg(i).Key, "radio")
		j.Done(msg(i).Key, "peer:b")
	}
	j.Done(msg(5).Key, "radio")
	j.Close()

	j, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if p := j.Pending("radio", 100); len(p) != 4 || p[0].Key != msg(6).Key {
		t.Fatalf("radio pending %v", p)
	}
	if p := j.Pending("peer:b", 100); len(p) != 5 || p[0].Body != "message 5" || p[0].RadioID != 1005 {
		t.Fatalf("peer pending %v", p)
	}
	if dup, _ := j.Accept(msg(0), []string{"radio"}); !dup {
		t.Fatal("delivered message accepted again after reopen")
	}
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, Options{})
	j.Accept(msg(0), []string{"radio"})
	j.Accept(msg(1), []string{"radio"})
	j.Close()
	p := filepath.Join(dir, "00000001.log")
	st, _ := os.Stat(p)
	os.Truncate(p, st.Size()-3)
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := j.Pending("radio", 10); len(got) != 1 || j.Stats().Corrupt != 1 {
		t.Fatalf("%v %+v", got, j.Stats())
	}
	// New records after the cut tail must be readable.
	j.Accept(msg(2), []string{"radio"})
	j.Close()
	j, _ = Open(dir, Options{})
	defer j.Close()
	if got := j.Pending("radio", 10); len(got) != 2 {
		t.Fatalf("%v", got)
	}
}

func TestBoundedByRollover(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, Options{SegmentSize: 4096, MaxPending: 8192})
	for i := 0; i < 5000; i++ {
		if _, err := j.Accept(msg(i), []string{"radio"}); err != nil {
			t.Fatal(i, err)
		}
		if err := j.Done(msg(i).Key, "radio"); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		st, _ := e.Info()
		total += st.Size()
	}
	if len(ents) != 1 || total > 4096+8*8192+8192 {
		t.Fatalf("%d files, %d bytes after 5000 messages", len(ents), total)
	}
	// Recent keys survive roll-over: still deduplicated.
	if dup, _ := j.Accept(msg(4990), []string{"radio"}); !dup {
		t.Fatal("recent key forgotten at roll-over")
	}
	// Undelivered data is bounded: refuse rather than grow.
	var full bool
	for i := 5000; i < 6000; i++ {
		if _, err := j.Accept(msg(i), []string{"radio"}); err == ErrFull {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("never full")
	}
	j.Close()
	j, _ = Open(dir, Options{SegmentSize: 4096, MaxPending: 8192})
	defer j.Close()
	if n := len(j.Pending("radio", 1000)); n < 50 {
		t.Fatalf("%d pending after reopen", n)
	}
}

// TestKill9 runs a writer in a child process, kills it with SIGKILL in the
// middle of a burst, and checks that every acknowledged message is there.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("JOURNAL_KILL_CHILD"); dir != "" {
		j, err := Open(dir, Options{SegmentSize: 8192})
		if err != nil {
			panic(err)
		}
		for i := 0; ; i++ {
			if _, err := j.Accept(msg(i), []string{"radio"}); err != nil {
				panic(err)
			}
			if i%3 == 0 {
				j.Done(msg(i).Key, "radio")
			}
			fmt.Println(i) // acknowledged
		}
	}
	if testing.Short() {
		t.Skip("re-executes the test binary, which qemu-user cannot do without binfmt")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "JOURNAL_KILL_CHILD="+dir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			continue
		}
		last = n
		if n == 3000 {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	cmd.Wait()
	j, err := Open(dir, Options{SegmentSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	pend := map[message.Key]bool{}
	for _, m := range j.Pending("radio", 100000) {
		pend[m.Key] = true
	}
	for i := 0; i <= last; i++ {
		k := msg(i).Key
		if !j.Seen(k) {
			t.Fatalf("acknowledged message %d lost", i)
		}
		if i%3 != 0 && !pend[k] {
			t.Fatalf("undelivered message %d not pending", i)
		}
	}
}

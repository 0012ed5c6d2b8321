// Package journal is the bridge's store and forward: an append-only log of
// accepted messages and of their deliveries, on persistent storage.
//
// A message is accepted once its record is written (it then survives
// kill -9: the data is in the page cache); Sync makes it survive power
// loss, and a background loop syncs in batches so flash sees one fsync per
// interval, not one per message. Segments roll over at a fixed size; at
// roll-over the still-undelivered messages and the recent keys are copied
// forward and the old segments deleted, so the journal stays bounded and
// nothing is ever rewritten in place.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/meshnode/meshnode/lora-bridge/message"
)

// Record types.
const (
	recAccept = 1 // message + destinations
	recDone   = 2 // key + destination delivered
	recSeen   = 3 // key only: de-duplication window carried forward
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxRecord bounds one record: a message, or a chunk of keys.
const maxRecord = 8192

// ErrFull: accepting would exceed the size bound with undelivered data.
var ErrFull = errors.New("journal: full of undelivered messages")

// Options bound the journal.
type Options struct {
	SegmentSize int // roll over after this many bytes [256 KiB]
	MaxPending  int // bytes of undelivered messages [1 MiB]
	// DedupKeys remembered for de-duplication [8192]; each roll-over
	// copies them forward (8 bytes each).
	DedupKeys int
}

// Entry is an undelivered message and where it still has to go.
type Entry struct {
	Msg   message.Message
	Dests []string
}

// Journal is safe for concurrent use.
type Journal struct {
	dir  string
	opts Options

	mu       sync.Mutex
	f        *os.File
	seq      int
	size     int
	base     int // size right after the last roll-over (copied-forward data)
	dirty    bool
	pending  map[message.Key]*Entry
	order    []message.Key // acceptance order of pending
	pendSize int
	seen     map[message.Key]struct{}
	ring     []message.Key
	ringPos  int
	recent   []message.Message
	stats    Stats
}

// Stats are counters for status output.
type Stats struct {
	Accepted, Duplicates, Delivered, Syncs, Rollovers, Corrupt, WriteErrors uint64
	Pending                                                                 int
}

// Open replays the journal in dir (created if missing).
func Open(dir string, opts Options) (*Journal, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = 256 << 10
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = 1 << 20
	}
	if opts.DedupKeys == 0 {
		opts.DedupKeys = 8192
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, opts: opts, pending: map[message.Key]*Entry{}, seen: map[message.Key]struct{}{},
		ring: make([]message.Key, 0, min(opts.DedupKeys, 4096))}
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	for i, s := range segs {
		good, err := j.replay(s)
		if err != nil {
			return nil, err
		}
		if i == len(segs)-1 {
			// A torn record at the tail (kill -9 mid-write, power loss):
			// cut it off so new records follow valid ones.
			if err := os.Truncate(j.path(s), good); err != nil {
				return nil, err
			}
		}
		j.seq = s
	}
	if len(segs) > 1 {
		// Roll over now: compacts whatever a crash left half-compacted.
		if err := j.rollover(); err != nil {
			return nil, err
		}
		return j, nil
	}
	if err := j.openSeg(max(j.seq, 1)); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Journal) path(seq int) string { return filepath.Join(j.dir, fmt.Sprintf("%08d.log", seq)) }

func (j *Journal) segments() ([]int, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, err
	}
	var segs []int
	for _, e := range ents {
		var n int
		if strings.HasSuffix(e.Name(), ".log") {
			if _, err := fmt.Sscanf(e.Name(), "%08d.log", &n); err == nil && n > 0 {
				segs = append(segs, n)
			}
		}
	}
	sort.Ints(segs)
	return segs, nil
}

func (j *Journal) openSeg(seq int) error {
	f, err := os.OpenFile(j.path(seq), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	j.f, j.seq, j.size = f, seq, int(st.Size())
	return nil
}

// replay applies one segment's records and returns the offset after the
// last good one.
func (j *Journal) replay(seq int) (int64, error) {
	data, err := os.ReadFile(j.path(seq))
	if err != nil {
		return 0, err
	}
	var off int64
	for len(data) >= 8 {
		n := int(binary.BigEndian.Uint32(data))
		if n > maxRecord || len(data) < 8+n || crc32.Checksum(data[8:8+n], crcTable) != binary.BigEndian.Uint32(data[4:]) {
			j.stats.Corrupt++
			break
		}
		j.apply(data[8 : 8+n])
		data = data[8+n:]
		off += int64(8 + n)
	}
	if len(data) > 0 && len(data) < 8 {
		j.stats.Corrupt++
	}
	return off, nil
}

func (j *Journal) apply(rec []byte) {
	if len(rec) < 1 {
		return
	}
	switch rec[0] {
	case recAccept:
		m, rest, err := message.Decode(rec[1:])
		if err != nil {
			j.stats.Corrupt++
			return
		}
		dests := decodeDests(rest)
		j.remember(m.Key)
		if len(dests) > 0 {
			j.addPending(&Entry{Msg: m, Dests: dests})
		}
		j.addRecent(m)
	case recDone:
		if len(rec) < 9 {
			return
		}
		k := message.Key{Origin: binary.BigEndian.Uint32(rec[1:]), ID: binary.BigEndian.Uint32(rec[5:])}
		j.markDone(k, string(rec[9:]))
	case recSeen:
		for b := rec[1:]; len(b) >= 8; b = b[8:] {
			j.remember(message.Key{Origin: binary.BigEndian.Uint32(b), ID: binary.BigEndian.Uint32(b[4:])})
		}
	}
}

func decodeDests(b []byte) []string {
	var d []string
	for len(b) > 0 && len(b) >= 1+int(b[0]) {
		d = append(d, string(b[1:1+b[0]]))
		b = b[1+b[0]:]
	}
	return d
}

func (j *Journal) remember(k message.Key) {
	if _, ok := j.seen[k]; ok {
		return
	}
	if len(j.ring) < j.opts.DedupKeys {
		j.ring = append(j.ring, k)
	} else {
		delete(j.seen, j.ring[j.ringPos])
		j.ring[j.ringPos] = k
		j.ringPos = (j.ringPos + 1) % len(j.ring)
	}
	j.seen[k] = struct{}{}
}

func entrySize(e *Entry) int { return 64 + len(e.Msg.Body) + len(e.Msg.Sender) }

func (j *Journal) addPending(e *Entry) {
	if old, ok := j.pending[e.Msg.Key]; ok {
		j.pendSize -= entrySize(old)
	} else {
		j.order = append(j.order, e.Msg.Key)
	}
	j.pending[e.Msg.Key] = e
	j.pendSize += entrySize(e)
}

func (j *Journal) markDone(k message.Key, dest string) {
	e, ok := j.pending[k]
	if !ok {
		return
	}
	if i := slices.Index(e.Dests, dest); i >= 0 {
		e.Dests = slices.Delete(e.Dests, i, i+1)
	}
	if len(e.Dests) == 0 {
		delete(j.pending, k)
		j.pendSize -= entrySize(e)
		if i := slices.Index(j.order, k); i >= 0 {
			j.order = slices.Delete(j.order, i, i+1)
		}
	}
}

func (j *Journal) addRecent(m message.Message) {
	if j.recent = append(j.recent, m); len(j.recent) > 100 {
		j.recent = j.recent[len(j.recent)-100:]
	}
}

// write appends one record; the caller holds mu.
func (j *Journal) write(rec []byte) error {
	buf := make([]byte, 8, 8+len(rec))
	binary.BigEndian.PutUint32(buf, uint32(len(rec)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(rec, crcTable))
	buf = append(buf, rec...)
	if _, err := j.f.Write(buf); err != nil {
		j.stats.WriteErrors++
		// A short write (full disk) leaves a torn tail that replay cuts;
		// cut it now too so later records are not hidden behind it.
		_ = j.f.Truncate(int64(j.size))
		return fmt.Errorf("journal: %w", err)
	}
	j.size += len(buf)
	j.dirty = true
	return nil
}

// Seen reports whether a message with key k was accepted before.
func (j *Journal) Seen(k message.Key) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.seen[k]
	return ok
}

// Accept records m for delivery to dests. dup is true (and nothing is
// written) when the key was accepted before: exactly-once delivery.
func (j *Journal) Accept(m message.Message, dests []string) (dup bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.seen[m.Key]; ok {
		j.stats.Duplicates++
		return true, nil
	}
	e := &Entry{Msg: m, Dests: slices.Clone(dests)}
	if j.pendSize+entrySize(e) > j.opts.MaxPending {
		return false, ErrFull
	}
	rec := message.Append([]byte{recAccept}, &m)
	for _, d := range dests {
		rec = append(rec, byte(len(d)))
		rec = append(rec, d...)
	}
	if err := j.write(rec); err != nil {
		return false, err
	}
	j.stats.Accepted++
	j.remember(m.Key)
	if len(dests) > 0 {
		j.addPending(e)
	}
	j.addRecent(m)
	return false, j.maybeRollover()
}

// Done records that k reached dest.
func (j *Journal) Done(k message.Key, dest string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.pending[k]
	if !ok || !slices.Contains(e.Dests, dest) {
		return nil
	}
	rec := []byte{recDone}
	rec = binary.BigEndian.AppendUint32(rec, k.Origin)
	rec = binary.BigEndian.AppendUint32(rec, k.ID)
	rec = append(rec, dest...)
	if err := j.write(rec); err != nil {
		return err
	}
	j.stats.Delivered++
	j.markDone(k, dest)
	return j.maybeRollover()
}

// Pending returns undelivered messages for dest, oldest first (at most n).
func (j *Journal) Pending(dest string, n int) []message.Message {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []message.Message
	for _, k := range j.order {
		if e := j.pending[k]; slices.Contains(e.Dests, dest) {
			out = append(out, e.Msg)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// Recent returns up to n of the last accepted messages, newest last.
func (j *Journal) Recent(n int) []message.Message {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.recent[max(0, len(j.recent)-n):])
}

// Stats returns the counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Pending = len(j.pending)
	return s
}

// Sync makes everything written so far durable (one fsync).
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.dirty {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	j.dirty = false
	j.stats.Syncs++
	return nil
}

func (j *Journal) maybeRollover() error {
	if j.size-j.base < j.opts.SegmentSize {
		return nil
	}
	return j.rollover()
}

// rollover starts a new segment holding what is still needed (pending
// messages, recent keys), makes it durable, then deletes older segments.
func (j *Journal) rollover() error {
	old := j.seq
	if j.f != nil {
		if err := j.f.Sync(); err != nil {
			return err
		}
		j.f.Close()
	}
	next := old + 1
	tmp := j.path(next) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	j.f, j.size = f, 0
	werr := func() error {
		seen := []byte{recSeen}
		for _, k := range j.ring {
			seen = binary.BigEndian.AppendUint32(seen, k.Origin)
			seen = binary.BigEndian.AppendUint32(seen, k.ID)
			if len(seen)+8 > maxRecord {
				if err := j.write(seen); err != nil {
					return err
				}
				seen = seen[:1]
			}
		}
		if err := j.write(seen); err != nil {
			return err
		}
		for _, k := range j.order {
			e := j.pending[k]
			rec := message.Append([]byte{recAccept}, &e.Msg)
			for _, d := range e.Dests {
				rec = append(append(rec, byte(len(d))), d...)
			}
			if err := j.write(rec); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	f.Close()
	if werr != nil {
		os.Remove(tmp)
		if err := j.openSeg(old); err != nil {
			return err
		}
		return werr
	}
	// The rename is the commit point: before it, replay sees the old
	// segments; after it, the new one (plus old ones, which replay and
	// Open compact again harmlessly).
	if err := os.Rename(tmp, j.path(next)); err != nil {
		return err
	}
	syncDir(j.dir)
	segs, _ := j.segments()
	for _, s := range segs {
		if s < next {
			os.Remove(j.path(s))
		}
	}
	j.stats.Rollovers++
	if err := j.openSeg(next); err != nil {
		return err
	}
	j.base = j.size
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Close syncs and closes.
func (j *Journal) Close() error {
	err := j.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ io.Closer = (*Journal)(nil)

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
	"bufio"
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

// entry is an undelivered message, kept compact because the pending set
// is most of the bridge's memory: the message in its binary encoding (one
// allocation instead of a struct and two strings) and the destinations it
// still has to reach as bits indexing Journal.names.
type entry struct {
	rec   string
	dests uint64
}

// maxDests bounds the destinations with undelivered messages at a time
// (the radio and the peers): one bit each in entry.dests.
const maxDests = 64

// ErrDests: a message for a destination beyond the first maxDests.
var ErrDests = errors.New("journal: too many destinations with undelivered messages")

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
	pending  map[message.Key]entry
	order    []message.Key // acceptance order of pending
	pendSize int
	names    []string // destination of each entry.dests bit; "" is free
	wbuf     []byte   // record scratch, reused under mu
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
	j := &Journal{dir: dir, opts: opts, pending: map[message.Key]entry{}, seen: map[message.Key]struct{}{},
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
// last good one. It streams the segment through one record-sized buffer:
// a segment holds up to MaxPending of copied-forward messages, which must
// not be read into memory whole at start.
func (j *Journal) replay(seq int) (int64, error) {
	f, err := os.Open(j.path(seq))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 4096)
	rec := make([]byte, 8+maxRecord)
	var off int64
	for {
		h, err := io.ReadFull(r, rec[:8])
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF && h > 0 {
				j.stats.Corrupt++ // torn header
				return off, nil
			}
			return 0, err
		}
		n := int(binary.BigEndian.Uint32(rec))
		if n > maxRecord {
			j.stats.Corrupt++
			return off, nil
		}
		if _, err := io.ReadFull(r, rec[8:8+n]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				j.stats.Corrupt++ // torn record
				return off, nil
			}
			return 0, err
		}
		if crc32.Checksum(rec[8:8+n], crcTable) != binary.BigEndian.Uint32(rec[4:]) {
			j.stats.Corrupt++
			return off, nil
		}
		j.apply(rec[8 : 8+n])
		off += int64(8 + n)
	}
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
		j.remember(m.Key)
		if dests, ok := j.destBits(rest); !ok {
			j.stats.Corrupt++ // more destinations than Accept allows
		} else if dests != 0 {
			j.addPending(m.Key, entry{rec: string(message.Append(nil, &m)), dests: dests})
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

// destBits interns the length-prefixed destination names of an accept
// record.
func (j *Journal) destBits(b []byte) (uint64, bool) {
	var bits uint64
	for len(b) > 0 && len(b) >= 1+int(b[0]) {
		bit, ok := j.bit(string(b[1:1+b[0]]), true)
		if !ok {
			return 0, false
		}
		bits |= bit
		b = b[1+b[0]:]
	}
	return bits, true
}

// bit returns dest's bit, interning the name if add; ok is false for an
// unknown name (add false) or when all maxDests bits are taken by
// destinations that still have undelivered messages.
func (j *Journal) bit(dest string, add bool) (uint64, bool) {
	free := -1
	for i, n := range j.names {
		if n == dest {
			return 1 << i, true
		}
		if n == "" && free < 0 {
			free = i
		}
	}
	if !add {
		return 0, false
	}
	if free < 0 && len(j.names) < maxDests {
		j.names = append(j.names, "")
		free = len(j.names) - 1
	}
	if free < 0 {
		// Reclaim the bits of destinations nothing is pending for
		// (renamed or removed peers).
		var used uint64
		for _, e := range j.pending {
			used |= e.dests
		}
		for i := range j.names {
			if used&(1<<i) == 0 {
				j.names[i] = ""
				if free < 0 {
					free = i
				}
			}
		}
		if free < 0 {
			return 0, false
		}
	}
	j.names[free] = strings.Clone(dest)
	return 1 << free, true
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

// encHeader is the fixed part of message.Append's encoding.
const encHeader = 26

// entrySize is what an undelivered message counts against MaxPending:
// 64 bytes plus its sender and body.
func entrySize(sender, body int) int { return 64 + sender + body }

func (e entry) size() int { return entrySize(0, len(e.rec)-encHeader) }

func (j *Journal) addPending(k message.Key, e entry) {
	if old, ok := j.pending[k]; ok {
		j.pendSize -= old.size()
	} else {
		j.order = append(j.order, k)
	}
	j.pending[k] = e
	j.pendSize += e.size()
}

func (j *Journal) markDone(k message.Key, dest string) {
	e, ok := j.pending[k]
	if !ok {
		return
	}
	if bit, ok := j.bit(dest, false); ok {
		e.dests &^= bit
		j.pending[k] = e
	}
	if e.dests == 0 {
		delete(j.pending, k)
		j.pendSize -= e.size()
		if i := slices.Index(j.order, k); i >= 0 {
			j.order = slices.Delete(j.order, i, i+1)
		}
		if len(j.order) == 0 {
			j.order = nil // drop a backing array grown by a burst
		}
	}
}

func (j *Journal) addRecent(m message.Message) {
	if j.recent = append(j.recent, m); len(j.recent) > 100 {
		j.recent = j.recent[len(j.recent)-100:]
	}
}

// record starts a record in j.wbuf: 8 header bytes (filled in by write)
// and the record type. The caller holds mu.
func (j *Journal) record(typ byte) []byte {
	return append(j.wbuf[:0], 0, 0, 0, 0, 0, 0, 0, 0, typ)
}

// write appends one record made with record; the caller holds mu.
func (j *Journal) write(buf []byte) error {
	rec := buf[8:]
	binary.BigEndian.PutUint32(buf, uint32(len(rec)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(rec, crcTable))
	if cap(buf) <= 2*maxRecord {
		j.wbuf = buf[:0] // keep the grown scratch, bounded
	}
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
	if len(dests) > 0 && j.pendSize+entrySize(len(m.Sender), len(m.Body)) > j.opts.MaxPending {
		return false, ErrFull
	}
	var bits uint64
	for _, d := range dests {
		bit, ok := j.bit(d, true)
		if !ok {
			return false, ErrDests
		}
		bits |= bit
	}
	rec := message.Append(j.record(recAccept), &m)
	for _, d := range dests {
		rec = append(rec, byte(len(d)))
		rec = append(rec, d...)
	}
	if err := j.write(rec); err != nil {
		return false, err
	}
	j.stats.Accepted++
	j.remember(m.Key)
	if bits != 0 {
		enc := rec[8+1:]
		j.addPending(m.Key, entry{rec: string(enc[:len(enc)-destsLen(dests)]), dests: bits})
	}
	j.addRecent(m)
	return false, j.maybeRollover()
}

// Done records that k reached dest.
func (j *Journal) Done(k message.Key, dest string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.pending[k]
	if bit, known := j.bit(dest, false); !ok || !known || e.dests&bit == 0 {
		return nil
	}
	rec := j.record(recDone)
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
	bit, ok := j.bit(dest, false)
	if !ok {
		return nil
	}
	var out []message.Message
	for _, k := range j.order {
		if e := j.pending[k]; e.dests&bit != 0 {
			m, _, err := message.Decode([]byte(e.rec))
			if err != nil {
				continue // cannot happen: encoded by Accept or replay
			}
			out = append(out, m)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func destsLen(dests []string) int {
	n := 0
	for _, d := range dests {
		n += 1 + len(d)
	}
	return n
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
		seen := j.record(recSeen)
		for _, k := range j.ring {
			seen = binary.BigEndian.AppendUint32(seen, k.Origin)
			seen = binary.BigEndian.AppendUint32(seen, k.ID)
			if len(seen)-8+8 > maxRecord {
				if err := j.write(seen); err != nil {
					return err
				}
				seen = j.record(recSeen)
			}
		}
		if err := j.write(seen); err != nil {
			return err
		}
		for _, k := range j.order {
			e := j.pending[k]
			rec := append(j.record(recAccept), e.rec...)
			for i, d := range j.names {
				if e.dests&(1<<i) != 0 {
					rec = append(append(rec, byte(len(d))), d...)
				}
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

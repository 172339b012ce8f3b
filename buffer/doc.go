// Package buffer is fieldgate's disk-backed log of readings: every reading
// is stored here, numbered with the gateway-wide seq, before any upstream
// sees it, and leaves only when every upstream has acknowledged it or the
// size cap forces the oldest out.
//
// # Why a log of our own
//
// A well-kept library was the first choice; measurement ruled the candidates
// out. On ext4 (write syscall bytes "wchar" and block-layer bytes
// "write_bytes" from /proc/self/io, 2000 commits each, fsync per commit):
//
//   - go.etcd.io/bbolt v1.5.0: 23 KB (wchar) / 35 KB (block) per commit of a
//     240-byte value, 45 KB / 61 KB for a 4.8 KB value (a 200-reading poll
//     cycle): every commit rewrites the B+tree leaf, its branches, the
//     freelist and a meta page, and fsyncs twice. 10–100× the data written,
//     on SD cards that wear by the byte.
//   - github.com/tidwall/wal v1.2.1: appends cost what they should (242 B /
//     4.3 KB per 240-byte entry), but entries are framed by a length only,
//     with no checksum, so bit rot goes unnoticed; Open returns ErrCorrupt on
//     a torn last entry, so a power cut would stop the gateway from starting
//     until someone deletes files; TruncateFront copies the rest of the
//     segment into a new file (0.36 MB per call with 240-byte entries,
//     7 MB with 4.8 KB entries in the test, up to the 20 MB segment size),
//     and reads load whole segments into memory (two cached plus the tail:
//     up to 60 MB, too much for a Pi).
//
// So this package keeps a segmented append-only log with the properties
// needed here: CRC32C per record, a torn tail cut at Open with a warning
// and a copy kept, space released by deleting whole segment files (no copying), and
// bounded memory. Measured with the same method, a fsynced 20-reading cycle
// writes 263 B (4.4 KB at the block layer: one page rewritten), a
// 200-reading cycle 2.5 KB (6.6 KB); BenchmarkAppend: 12.5 bytes on disk per
// float reading in 200-reading cycles, everything included.
//
// # On-disk format
//
// The directory holds segment files named by the seq of their first reading
// (00000000000000000001.seg), seq.state, cursors.state, a lock file
// (flock: one process per directory) and, after a repair, up to three
// copies of damaged segments (see Crash semantics).
//
// A segment is the 16-byte header "fgbuf\0\0\x02" and the buffer's 8-byte
// secret key, followed by frames:
//
//	magic 0xF6 0x1B | payload length uint32 LE | checksum uint32 LE | payload
//
// The checksum is CRC-32C over the key, the segment's first seq (uint64 LE),
// the frame's offset in the file (uint64 LE), the length bytes and the
// payload. Binding each frame to its place and to a key no device sees
// means data cannot imitate a record: a whole frame a device sends inside a
// string value, or a frame copied from elsewhere in the log, never
// verifies where it lies, so resynchronising after damage lands only on
// records the buffer wrote. The key is also kept in seq.state, for segments
// whose header is damaged. Segments of format 1 (header "fgbuf\0\0\x01",
// 8 bytes, checksum over length and payload only), written by earlier
// versions, are still read.
//
// Each payload is one record, one poll cycle:
//
//	flags byte (bit 0: the definitions are the whole dictionary)
//	first seq uvarint | reading count uvarint | base time varint (µs since 1970)
//	definition count uvarint, then per definition: point id uvarint,
//	    adapter name and point name (uvarint length + bytes)
//	per reading: point id uvarint | time delta from the previous reading
//	    varint (µs) | kind byte (reading.Kind) | value: float 8 bytes LE,
//	    int zig-zag varint, string uvarint length + bytes, other kinds a
//	    uvarint of the bits
//
// A float reading costs 11–14 bytes. The point dictionary lives in the log
// itself: a record defines the points it is the first to use, and the first
// record of every segment (and, if corruption took that one, the first after
// the next Open) carries the whole dictionary, so the newest segment alone
// rebuilds it and older segments can be deleted freely. Times come back in UTC with microsecond precision.
//
// The magic lets a reader resynchronise after a damaged record: the next
// position holding the magic and a frame whose CRC matches is taken as the
// next record, so one bad record costs only its own readings.
//
// The state files are internal/statefile files: two checksummed slots each,
// overwritten in place in turn (one page write and an fdatasync, no rename,
// so no journal churn from new inodes); a torn write leaves the other slot's
// previous state.
// seq.state holds the kernel boot id, the seq reservation, after a clean
// Close the exact next seq, and the frame key; cursors.state holds each
// upstream's cursor. A record is accepted only if its seqs continue its
// segment's and stay below the reservation, and seq arithmetic is bounded
// (2^62), so no damage or forgery can make seqs wrap.
//
// # A full disk
//
// "Full" is max_size or the file system running out of space, whichever
// comes first (SPEC §4.1). A write or a new segment that fails for want of
// space evicts the oldest segment and tries again, so collection never
// stops: the evicted readings are counted as dropped like those the size
// cap evicts, and the episode is logged when it starts and when a new
// segment finds room for two more. A segment that could not be started
// leaves no file behind.
//
// # Crash semantics
//
// Open reads only the newest segment (start-up does not wait for a large
// backlog); older segments are indexed (sparse: one entry per 64 KiB) and
// checked the first time a Read reaches them. Damage never stops Open and
// costs only the frames it touched, each frame carrying its own checksum: a
// bad record followed by good ones is skipped; a tail ending in bytes that
// hold no valid frame (a torn last write) is cut; a damaged segment header
// is rewritten and every frame that verifies is kept (in the tail at Open,
// in a sealed segment when it is first read). Each is logged as a warning
// and counted in Stats.Corrupt: one per record skipped, per torn tail and
// per damaged header. A repair renumbers nothing: seqs come from the
// frames, which must stay in order, and the next seq is chosen as below, so
// none is reused.
//
// Repair keeps evidence, as etcd's WAL does: before a segment is rewritten
// or cut, the whole file as it was is copied beside it to <segment>.broken
// (<segment>.broken.2 and so on if that name is taken, so no copy is
// overwritten), synced, and named in the warning with the bytes cut. The
// copies do not end in .seg, so they are never read as segments and do not
// count towards MaxSize. Only the newest three (by modification time) are
// kept, older ones being deleted, so repeated damage takes at most three
// segments' worth of disk. Failing to make a copy (a full disk) is logged
// and the repair goes ahead: the buffer always opens. The repaired segment
// is synced, so the next Open finds it clean and makes no second copy.
//
// seq is assigned under one lock and written to the page cache before Append
// returns, so a kill -9 loses nothing: the next Open finds every record
// and, seeing the same boot id, continues at the log's end. Seqs are
// reserved durably ahead of use in blocks of 65536; after a reboot without a
// clean Close (a power cut), Open continues at the reservation, past any seq
// that may have been published and then lost with the page cache, so a seq
// is never reused for another reading. A clean Close records the exact next
// seq, so even a reboot after it continues without a gap. Skipped seqs lie
// between segments, never inside one (Open starts a new segment after
// them), so evicting a segment later counts only readings that existed.
//
// The write path goes through internal/durable's FS. Tests run it over
// crashfs, which forgets what was not synced and tears the last write at a
// random byte, and cut the power hundreds of times per fsync mode
// (TestPowerCuts).
//
// Fsync modes: FsyncAlways syncs before Append returns, concurrent Appends
// sharing one fdatasync (group commit); FsyncInterval syncs from a
// goroutine Close stops, so that nothing written waits longer than
// FsyncInterval, and at once when a write comes late in the interval since
// the last sync (a poll per interval is durable as it is written);
// FsyncNever syncs at Close.
// Whatever the mode, a full segment is synced once when the next starts, and
// seq reservations are always synced (they are rare and guard seq
// uniqueness). Cursors are saved on each Ack (always), within an interval
// (interval) or at Close (never); a cursor found behind after a crash only
// means duplicates, which consumers drop by seq.
//
// Memory is bounded whatever the backlog: the sparse index, the point
// dictionary, a cache of the newest 4096 readings (so upstreams that keep up
// never touch the disk) and what one Read returns.
package buffer

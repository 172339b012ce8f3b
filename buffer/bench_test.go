package buffer

import (
	"testing"
)

// BenchmarkAppend appends poll cycles of 200 float readings and reports
// throughput and the bytes each reading costs on disk (framing, headers and
// dictionary snapshots included).
func BenchmarkAppend(b *testing.B) {
	for _, m := range []FsyncMode{FsyncAlways, FsyncInterval, FsyncNever} {
		b.Run(m.String(), func(b *testing.B) {
			buf := open(b, b.TempDir(), []string{"u"}, Options{Fsync: m})
			rs := batch(0, 200)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := buf.Append(rs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			n := float64(b.N * len(rs))
			b.ReportMetric(n/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(buf.written)/n, "bytes/reading")
			b.ReportMetric(float64(buf.Stats().Syncs)/float64(b.N), "fsyncs/append")
			closeBuf(b, buf)
		})
	}
}

// BenchmarkRead drains a backlog from disk (past the in-memory cache) in
// chunks of 500, as a bridge catching up after an outage does.
func BenchmarkRead(b *testing.B) {
	buf := open(b, b.TempDir(), []string{"u"}, Options{Fsync: FsyncNever})
	defer closeBuf(b, buf)
	const cycles, n = 500, 200
	for k := range cycles {
		if _, _, err := buf.Append(batch(k, n)); err != nil {
			b.Fatal(err)
		}
	}
	backlog := uint64(cycles*n) - cacheEntries
	b.ResetTimer()
	read := 0
	for i := 0; i < b.N; i++ {
		from := uint64(1)
		for from <= backlog {
			es, err := buf.Read("u", from, 500)
			if err != nil || len(es) == 0 {
				b.Fatalf("Read(%d) = %d entries, %v", from, len(es), err)
			}
			read += len(es)
			from = es[len(es)-1].Seq + 1
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "readings/s")
}

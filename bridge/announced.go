package bridge

import (
	"encoding/json"
	"errors"
	"io/fs"
	"slices"

	"github.com/fieldgate/fieldgate/internal/reading"
	"github.com/fieldgate/fieldgate/internal/statefile"
)

// announcedFormat tells a file of announced points from the gateway's
// other state files.
var announcedFormat = statefile.Format{Magic: [4]byte{'F', 'G', 'P', 'T'}, Align: 512}

// announcement is what an adapter announced at run time, kept in the state
// directory so that after a restart the readings the buffer still holds of
// those points are described at once — their units in payloads, their Home
// Assistant entities, their place in Sparkplug births — rather than once
// the adapter has found its device again, which may be down for hours: a
// Sparkplug upstream could not carry them until then. Device is the
// adapter's config summary when it announced them: a changed config (another
// device, discovery turned off) makes the announcement void.
type announcement struct {
	Device string          `json:"device"`
	Points []reading.Point `json:"points"`
}

func (a announcement) equal(b announcement) bool {
	return a.Device == b.Device && slices.Equal(a.Points, b.Points)
}

func announcedFile(dir *statefile.Dir, adapter string) *statefile.File {
	return dir.File("points-"+adapter+".json", announcedFormat)
}

// loadAnnounced returns what each adapter of v announced before the last
// stop; setView then voids those made for another device.
func (b *Bridge) loadAnnounced(v *view) map[string]announcement {
	out := map[string]announcement{}
	if b.state == nil {
		return out
	}
	for _, adapter := range v.adapters {
		f := announcedFile(b.state, adapter)
		data, err := f.Load()
		_ = f.Close()
		var a announcement
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err == nil:
			err = json.Unmarshal(data, &a)
		}
		if err != nil {
			b.logger.Warn("announced points not read; the adapter announces them again", "adapter", adapter, "err", err)
			continue
		}
		if len(a.Points) > 0 {
			out[adapter] = a
		}
	}
	return out
}

// saveAnnounced keeps adapter's announcement an.
func (b *Bridge) saveAnnounced(adapter string, an announcement) {
	if b.state == nil {
		return
	}
	data, err := json.Marshal(an)
	if err == nil {
		f := announcedFile(b.state, adapter)
		_, _ = f.Load() // a missing or unusable file is replaced
		err = f.Save(data)
		_ = f.Close()
	}
	if err != nil {
		b.logger.Warn("announced points not kept: after a restart they are unknown until the adapter announces them again",
			"adapter", adapter, "err", err)
	}
}

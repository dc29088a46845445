package ui

import (
	"fmt"
	"slices"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/incarnate-dev/incarnate/session"
)

// BenchmarkKeyToRepaint times what a keypress costs with 1,000 sessions
// listed while their figures are still being taken (every row stale):
// Update for the key, then View for the frame, in process. The target is
// under one frame (16 ms) at the median.
func BenchmarkKeyToRepaint(b *testing.B) {
	for _, tc := range []struct {
		name string
		keys []tea.KeyPressMsg
	}{
		{"down", []tea.KeyPressMsg{press("down")}},
		{"filter", []tea.KeyPressMsg{press("s")}}, // typed into the open filter
		{"sort", []tea.KeyPressMsg{press("s")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := &session.Store{Root: b.TempDir()}
			m := New(Options{Store: st, Profile: colorprofile.ASCII, NoTick: true})
			m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
			rows := make([]row, 1000)
			now := time.Now()
			for i := range rows {
				rows[i] = row{Entry: &session.Entry{
					Meta:  &session.Meta{Name: fmt.Sprintf("s%04d", i), Base: "bb", Created: now.Add(-time.Duration(i) * time.Minute)},
					Stats: session.Stats{Size: int64(i) * 4096, Changes: i, Stale: true},
				}}
			}
			m.Update(entriesMsg{rows: rows})
			if tc.name == "filter" {
				m.Update(press("/"))
			}
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				for _, k := range tc.keys {
					m.Update(k)
				}
				_ = m.View()
				times = append(times, time.Since(start))
				if tc.name == "filter" && i%4 == 3 {
					m.Update(tea.KeyPressMsg{Code: tea.KeyBackspace})
				}
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms_median")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "ms_p99")
		})
	}
}

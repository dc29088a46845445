package sandbox

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestOverlayLegacyOptions(t *testing.T) {
	tests := []struct {
		name string
		op   MountOverlay
		want string
	}{
		{"seed", MountOverlay{Target: "/newroot", Lowers: []string{"/base"}, Upper: "/sess", Work: "/work"},
			"lowerdir=/base,upperdir=/sess,workdir=/work"},
		{"stacked lowers top first", MountOverlay{Target: "/m", Lowers: []string{"/l2", "/l1"}, Upper: "/u", Work: "/w"},
			"lowerdir=/l2:/l1,upperdir=/u,workdir=/w"},
		{"comma colon backslash escaped", MountOverlay{Target: "/m", Lowers: []string{"/a,b", "/c:d"}, Upper: `/u\v`, Work: "/w,x:y"},
			`lowerdir=/a\,b:/c\:d,upperdir=/u\\v,workdir=/w\,x\:y`},
		{"userxattr", MountOverlay{Target: "/m", Lowers: []string{"/l"}, Upper: "/u", Work: "/w", UserXattr: true},
			"lowerdir=/l,upperdir=/u,workdir=/w,userxattr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			got, err := tt.op.LegacyOptions()
			if err != nil || got != tt.want {
				t.Fatalf("LegacyOptions() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestOverlayLegacyOptionsRefusesMoreThanAPage(t *testing.T) {
	long := "/" + strings.Repeat("x", 1500)
	op := MountOverlay{Target: "/m", Lowers: []string{long, long, long}, Upper: "/u", Work: "/w"}
	if err := op.Validate(); err != nil {
		t.Fatalf("Validate() = %v: each path is legal, only the legacy string is too long", err)
	}
	_, err := op.LegacyOptions()
	if !errors.Is(err, ErrInvalidOp) || !strings.Contains(err.Error(), "more than the 4095") {
		t.Fatalf("LegacyOptions() error = %v, want a refusal naming the page limit", err)
	}
}

func TestPivotRootBuilder(t *testing.T) {
	if err := NewPivotRoot("/newroot").Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if err := NewPivotRoot("newroot").Validate(); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("a relative new_root: Validate() = %v, want ErrInvalidOp", err)
	}
}

func TestBadPathsRefused(t *testing.T) {
	tests := []struct {
		name string
		op   Op
	}{
		{"NUL in chdir", Chdir{Path: "/tmp/a\x00b"}},
		{"relative chdir", Chdir{Path: "tmp"}},
		{"empty chdir", Chdir{Path: ""}},
		{"unclean chdir", Chdir{Path: "/tmp/../etc"}},
		{"longer than PATH_MAX", Chdir{Path: "/" + strings.Repeat("a", 4096)}},
		{"NUL in overlay upper", MountOverlay{Target: "/m", Lowers: []string{"/l"}, Upper: "/u\x00", Work: "/w"}},
		{"NUL in overlay lower", MountOverlay{Target: "/m", Lowers: []string{"/l\x00x"}, Upper: "/u", Work: "/w"}},
		{"no lower", MountOverlay{Target: "/m", Upper: "/u", Work: "/w"}},
		{"relative bind source", Bind{Src: "etc", Dst: "/etc"}},
		{"NUL in pivot", PivotRoot{NewRoot: "/r\x00"}},
		{"NUL in host name", Hostname{Name: "a\x00b"}},
		{"host name too long", Hostname{Name: strings.Repeat("h", 65)}},
		{"umask out of range", Umask{Mode: 0o1000}},
		{"signal out of range", ParentDeathSig{Signal: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op.Validate()
			if !errors.Is(err, ErrInvalidOp) {
				t.Fatalf("Validate() = %v, want ErrInvalidOp", err)
			}
			spec := Spec{Root: []Op{tt.op}, Argv: []string{"/bin/true"}}
			if err := spec.Validate(); !errors.Is(err, ErrInvalidOp) {
				t.Fatalf("Spec.Validate() = %v, want ErrInvalidOp", err)
			}
		})
	}
}

func TestOddButLegalPathsAccepted(t *testing.T) {
	for _, p := range []string{"/a,b", "/c:d", `/e\f`, "/sp ace", "/" + strings.Repeat("x", 3000)} {
		op := MountOverlay{Target: "/m", Lowers: []string{p}, Upper: p + "u", Work: p + "w"}
		if err := op.Validate(); err != nil {
			t.Errorf("Validate(%q) = %v, want nil: the new mount API takes it", p[:min(len(p), 20)], err)
		}
	}
}

// The spec crosses a pipe as JSON: every op must come back as the same
// typed value, in the same order.
func TestSpecRoundTripKeepsTypesAndOrder(t *testing.T) {
	in := Spec{
		Root: []Op{
			ParentDeathSig{Signal: syscall.SIGKILL}, MakeRslave{},
			MountOverlay{Target: "/newroot", Lowers: []string{"/base"}, Upper: "/sess", Work: "/work", UserXattr: true},
			MountProc{Target: "/newroot/proc"}, MountDev{Target: "/newroot/dev"}, MountSysfs{Target: "/newroot/sys"},
			MountTmpfs{Target: "/newroot/tmp", Mode: 0o1777}, Bind{Src: "/etc/hosts", Dst: "/newroot/etc/hosts", Optional: true},
			NewPivotRoot("/newroot"), Hostname{Name: "s"}, Dumpable{On: false},
		},
		Process: []Op{NoNewPrivs{}, CloseFds{}, Umask{Mode: 0o27}, Chdir{Path: "/tmp"}, NewSession{Ctty: true}, ParentDeathSig{Signal: syscall.SIGTERM}},
		Argv:    []string{"/bin/sh", "-c", "true"},
		Env:     []string{"A=b"},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Spec
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the spec:\n got %#v\nwant %#v", out, in)
	}
	kinds := func(ops []Op) (ks []string) {
		for _, op := range ops {
			ks = append(ks, op.Kind())
		}
		return ks
	}
	got := strings.Join(kinds(out.Root), " ")
	if !strings.Contains(got, "mount_overlay mount_proc mount_dev mount_sysfs mount_tmpfs bind pivot_root") {
		t.Fatalf("root op order = %s, want the overlay before the pivot", got)
	}
}

func TestSeedStatuses(t *testing.T) {
	tests := []struct {
		op   Op
		want int
	}{
		{NoNewPrivs{}, 110}, {ParentDeathSig{}, 111}, {Dumpable{}, 112}, {NewSession{}, 113},
		{Chdir{}, 114}, {MountOverlay{}, 115}, {PivotRoot{}, 117},
	}
	for _, tt := range tests {
		if got := tt.op.Status(); got != tt.want {
			t.Errorf("%s.Status() = %d, want %d", tt.op.Kind(), got, tt.want)
		}
	}
}

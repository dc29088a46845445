package sandbox

import (
	"fmt"
	"path"
	"strings"
)

// maxLowers is overlayfs's OVL_MAX_STACK.
const maxLowers = 500

// pageSize is what mount(2) copies of its data argument: a longer option
// string is cut without a word, so the legacy path refuses it instead.
const pageSize = 4096

func validateOverlay(o MountOverlay) error {
	if len(o.Lowers) == 0 || len(o.Lowers) > maxLowers {
		return &InvalidOpError{Op: o.Kind(), Reason: fmt.Sprintf("an overlay takes 1 to %d lower dirs, not %d", maxLowers, len(o.Lowers))}
	}
	for _, p := range append([]string{o.Target, o.Upper, o.Work}, o.Lowers...) {
		if err := checkAbs(o, p); err != nil {
			return err
		}
	}
	if o.IDMap && (o.Legacy || !within(o.Upper, o.home()) || !within(o.Work, o.home())) {
		return &InvalidOpError{Op: o.Kind(), Path: o.Upper, Reason: "an idmapped overlay needs the new mount API and its upper and work dirs in one directory"}
	}
	return nil
}

// LegacyOptions is the option string mount(2) takes for this overlay.
// Every path is escaped the way overlayfs unescapes it: a backslash before
// `\`, `,` (the option separator) and `:` (the lowerdir separator). The
// string must fit in a page, or the kernel would silently cut it.
func (o MountOverlay) LegacyOptions() (string, error) {
	lowers := make([]string, len(o.Lowers))
	for i, l := range o.Lowers {
		lowers[i] = escapeOverlayPath(l)
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") +
		",upperdir=" + escapeOverlayPath(o.Upper) +
		",workdir=" + escapeOverlayPath(o.Work)
	if o.UserXattr {
		opts += ",userxattr"
	}
	if len(opts) >= pageSize {
		return "", &InvalidOpError{Op: o.Kind(), Path: o.Target,
			Reason: fmt.Sprintf("overlay options are %d bytes, more than the %d mount(2) accepts", len(opts), pageSize-1)}
	}
	return opts, nil
}

var overlayEscaper = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)

func escapeOverlayPath(p string) string { return overlayEscaper.Replace(p) }

// home is the directory that holds the overlay's upper and work dirs.
func (o MountOverlay) home() string {
	if o.Home != "" {
		return o.Home
	}
	return path.Dir(o.Upper)
}

// within reports whether p lies strictly inside dir.
func within(p, dir string) bool { return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") }

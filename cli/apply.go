package cli

import (
	"fmt"
	"strings"

	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/session"
)

func cmdApply(c *ctx, args []string) error {
	fs := newFlags(c, "apply")
	yes := yesFlag(fs)
	force := fs.Bool("force", false, "overwrite conflicts too, and stop what runs inside the session first")
	dry := fs.Bool("dry-run", false, "show what would change, change nothing")
	keep := fs.Bool("keep", false, "keep the applied changes in the session as well")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("apply needs a session name, and optionally paths; see `incarnate apply --help`")
	}
	name, paths := pos[0], pos[1:]
	st, err := c.openStore()
	if err != nil {
		return err
	}
	if started, ok := st.InterruptedApply(name); ok {
		fmt.Fprintf(c.stderr, "incarnate: an apply of %s started %s was cut short; this one finishes it\n", name, started.Local().Format("2006-01-02 15:04"))
	}
	steps, err := st.PlanApply(name, paths)
	if err != nil {
		return c.inUserNS(err)
	}
	if len(steps) == 0 {
		fmt.Fprintf(c.stdout, "no changes in %s to apply\n", name)
		return nil
	}
	printPlan(c, steps, *force)
	if *dry {
		return planStatus(steps, *force)
	}
	if err := c.confirm(*yes, "Apply "+planSummary(steps, *force)+" to the host?", "nothing applied"); err != nil {
		return err
	}
	steps, err = st.Apply(name, session.ApplyOptions{Paths: paths, Force: *force, Keep: *keep, Progress: c.progressTo()})
	if err != nil {
		return err
	}
	applied := 0
	for _, s := range steps {
		if s.Denied == "" && (s.Conflict == "" || *force) {
			applied++
		}
	}
	fmt.Fprintf(c.stdout, "applied %d of %d paths of %s to the host\n", applied, len(steps), name)
	return planStatus(steps, *force)
}

// printPlan lists the steps as diff does, with what stops each.
func printPlan(c *ctx, steps []session.Step, force bool) {
	for _, s := range steps {
		line := s.Kind.Letter() + " " + termtext.Visible(s.Path)
		switch {
		case s.Denied != "":
			line += "  ✗ " + s.Denied
		case s.Conflict != "" && force:
			line += "  ! " + s.Conflict + " (overwritten: --force)"
		case s.Conflict != "":
			line += "  ! " + s.Conflict + " (left alone; --force overwrites)"
		case s.Kind == session.Replaced:
			line += "  (all the host holds in it goes; what the session has comes)"
		}
		fmt.Fprintln(c.stdout, line)
	}
}

// planSummary counts what will change, by kind.
func planSummary(steps []session.Step, force bool) string {
	counts := map[session.Kind]int{}
	n := 0
	for _, s := range steps {
		if s.Denied == "" && (s.Conflict == "" || force) {
			counts[s.Kind]++
			n++
		}
	}
	var parts []string
	for _, k := range []session.Kind{session.Added, session.Modified, session.Deleted, session.Replaced} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	return fmt.Sprintf("%d paths (%s)", n, strings.Join(parts, ", "))
}

// planStatus is exit status 1 when a step is left undone.
func planStatus(steps []session.Step, force bool) error {
	left := 0
	for _, s := range steps {
		if s.Denied != "" || (s.Conflict != "" && !force) {
			left++
		}
	}
	if left > 0 {
		return fmt.Errorf("%d of %d paths left alone (marked above)", left, len(steps))
	}
	return nil
}

package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
)

// report is the one record the stage sends its parent on the report pipe:
// the op that failed, or the target's exit status once it has ended. The
// status comes this way, rather than from the stage's own exit, so the
// parent can return while the kernel is still tearing the namespaces
// down (unmounting an overlay syncs its upper file system, which takes
// milliseconds nobody needs to wait for). EOF with no record means the
// stage died without a word; its wait status is all there is then.
type report struct {
	Failure *OpError `json:"failure,omitempty"`
	Exit    *int     `json:"exit,omitempty"`
	// Ready is a keeper's report: the root is built and it is listening.
	Ready *bool `json:"ready,omitempty"`
	// Notes are what the user should know of the root built (an optional
	// mount that failed), sent with Ready.
	Notes []string `json:"notes,omitempty"`
}

func writeReport(w io.Writer, r report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// readReport reads the stage's record; a nil report and nil error is EOF.
func readReport(r io.Reader) (*report, error) {
	b, err := io.ReadAll(r)
	if err != nil || len(b) == 0 {
		return nil, err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("sandbox stage sent a garbled report %q: %w", b, err)
	}
	return &rep, nil
}

package ui

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// gatedRegistry serves blob digest half-way, once, then waits for
// release: the pull is seen under way.
func gatedRegistry(t *testing.T, digest string) (host string, release func()) {
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	gate := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := false
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+digest) {
			once.Do(func() { first = true })
		}
		if !first {
			inner.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-gate
		w.Write(body[len(body)/2:])
	}))
	t.Cleanup(srv.Close)
	var closeOnce sync.Once
	release = func() { closeOnce.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return strings.TrimPrefix(srv.URL, "http://"), release
}

// p in the bases view pulls: a reference, the name left to the image's,
// a progress line of each layer while it runs, then the base listed; a
// reference the registry lacks is said in the status line.
func TestBasesPull(t *testing.T) {
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	first, _ := ls[0].Digest()
	host, release := gatedRegistry(t, first.String())
	ref, err := name.ParseReference(host + "/test/img:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	st := threeSessions(t)
	m, tm := openList(t, st)
	tm.Send(press("b"))
	waitFor(t, tm, "SOURCE")
	tm.Send(press("p"))
	waitFor(t, tm, "Pull a base from a registry")
	tm.Send(press("enter")) // nothing typed: refused
	waitFor(t, tm, "type an image reference")
	tm.Type(host + "/test/img:1")
	waitScreen(t, m, "the pull offered", func(s string) bool { return strings.Contains(s, "enter pull") })
	tm.Send(press("enter"))
	waitScreen(t, m, "a layer's progress", func(s string) bool { return strings.Contains(s, "layer 1/2") })
	release()
	waitScreen(t, m, "the base pulled and listed", func(s string) bool {
		return strings.Contains(s, "pulled base img-1 from "+host+"/test/img:1 (2 layers)") && strings.Contains(s, "img-1 ")
	})
	if _, err := st.Layers.Get("img-1"); err != nil {
		t.Errorf("the pulled base: %v", err)
	}
	tm.Send(press("p"))
	waitFor(t, tm, "Pull a base from a registry")
	tm.Type(host + "/test/none:1")
	tm.Send(press("tab"))
	tm.Type("none")
	tm.Send(press("enter"))
	waitScreen(t, m, "the registry's answer", func(s string) bool { return strings.Contains(s, "has no image test/none:1") })
}

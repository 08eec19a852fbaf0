package upload

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CSP for served files: nothing may load or run, not even if a browser
// is talked into rendering one as a page (sandbox: no script, an opaque
// origin, so an uploaded HTML file can never act as the box's pages).
const CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

func (u *Uploads) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	// XEP-0363 §6 (CORS): web clients on another origin PUT and GET with
	// the token as the only credential; no cookies are involved.
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	key, name, ok := parsePath(r.URL.Path)
	if !ok {
		http.Error(w, "No such file.", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodPut:
		u.put(w, r, key, name)
	case http.MethodGet, http.MethodHead:
		u.get(w, r, key, name)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
	}
}

// parsePath takes "/upload/<token>/<name>" (the decoded path) apart. Any
// other shape — more or fewer segments, a token we could not have made,
// dot segments or backslashes in whatever encoding they arrived — is not
// found. The token is the only thing that selects a file, and the name on
// disk comes from the record, never from the path.
func parsePath(p string) (key, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return "", "", false
	}
	token, name, ok := strings.Cut(rest, "/")
	if !ok || name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return "", "", false
	}
	key = keyOf(token)
	return key, name, key != ""
}

// lookup returns the record of key if its name matches.
func (u *Uploads) lookup(key, name string) (*record, error) {
	var rec *record
	err := u.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		var err error
		rec, err = getRecord(b, key)
		return err
	})
	if err != nil || rec == nil || rec.Name != name {
		return nil, err
	}
	return rec, nil
}

func (u *Uploads) get(w http.ResponseWriter, r *http.Request, key, name string) {
	rec, err := u.lookup(key, name)
	if err != nil {
		u.o.Log.Error("upload: get", "err", err)
		http.Error(w, "Server error.", http.StatusInternalServerError)
		return
	}
	if rec == nil || !rec.Done || u.o.Now().UnixNano() >= u.expires(rec) {
		http.Error(w, "No such file.", http.StatusNotFound)
		return
	}
	f, err := os.Open(u.path(rec.File))
	if err != nil {
		// The sweeper removed it between the lookup and here.
		http.Error(w, "No such file.", http.StatusNotFound)
		return
	}
	defer f.Close()
	h := w.Header()
	typ, inline := served(mediaType(rec.Type))
	h.Set("Content-Type", typ)
	disp := "attachment"
	if inline {
		disp = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": rec.Name}))
	// The file never changes under its URL: its key identifies it.
	h.Set("ETag", `"`+key[:32]+`"`)
	h.Set("Cache-Control", "private, max-age=2592000, immutable")
	http.ServeContent(w, r, "", time.Unix(0, rec.Created), f)
}

// served returns the Content-Type a file is served with and whether it
// may be shown inline. Only images, audio and video that browsers show
// without running anything are inline; SVG (a document that may carry
// script) and everything else is an attachment, and markup or script
// types go as application/octet-stream besides, so that even a browser
// that ignored the disposition would have nothing to render.
func served(t string) (string, bool) {
	main, sub, _ := strings.Cut(t, "/")
	switch {
	case main == "image" && inlineImage(sub):
		return t, true
	case (main == "audio" || main == "video") && !strings.Contains(sub, "xml"):
		return t, true
	}
	for _, bad := range []string{"html", "xml", "svg", "javascript", "ecmascript", "xsl"} {
		if strings.Contains(t, bad) {
			return "application/octet-stream", false
		}
	}
	return t, false
}

// inlineImage reports the image subtypes browsers show as pictures only.
func inlineImage(sub string) bool {
	switch sub {
	case "jpeg", "png", "gif", "webp", "avif", "heic", "heif", "bmp", "jxl":
		return true
	}
	return false
}

// put takes the file for a slot. Every refusal leaves nothing behind: the
// body goes to a temporary file that is removed on any error and renamed
// into place only once it is whole and on disk.
func (u *Uploads) put(w http.ResponseWriter, r *http.Request, key, name string) {
	rec, err := u.lookup(key, name)
	if err != nil {
		u.o.Log.Error("upload: put", "err", err)
		http.Error(w, "Server error.", http.StatusInternalServerError)
		return
	}
	if u.afterLookup != nil {
		u.afterLookup()
	}
	now := u.o.Now()
	switch {
	case rec == nil:
		http.Error(w, "No such upload slot.", http.StatusNotFound)
		return
	case rec.Done:
		// The token is spent: a file never changes under its URL.
		http.Error(w, "This file was uploaded already.", http.StatusConflict)
		return
	case now.UnixNano() >= rec.PutBy:
		http.Error(w, "The upload slot expired; ask for a new one.", http.StatusGone)
		return
	case r.ContentLength > rec.Size:
		http.Error(w, "The file is larger than the slot.", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength >= 0 && r.ContentLength < rec.Size:
		http.Error(w, "The file is smaller than the slot.", http.StatusBadRequest)
		return
	}
	putType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		putType = mediaType(ct)
	}
	if putType != "" && rec.Type != "" && putType != rec.Type {
		// XEP-0363 §5: the Content-Type must be the one of the request.
		http.Error(w, "The Content-Type differs from the slot's.", http.StatusBadRequest)
		return
	}
	if !u.begin(key) {
		http.Error(w, "This slot is being uploaded already.", http.StatusConflict)
		return
	}
	defer u.end(key)
	// Again, now that no other PUT of this slot can run: one that ended
	// since the first look may have finished it, and a second rename onto
	// its file would change the file under its URL.
	if rec, err = u.lookup(key, name); err != nil || rec == nil || rec.Done {
		http.Error(w, "This file was uploaded already.", http.StatusConflict)
		return
	}

	status, msg := u.receive(w, r, key, rec, putType)
	if status != http.StatusCreated {
		// The client may still be sending: do not read the rest.
		w.Header().Set("Connection", "close")
		http.Error(w, msg, status)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (u *Uploads) begin(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.active[key] {
		return false
	}
	u.active[key] = true
	return true
}

func (u *Uploads) end(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.active, key)
}

// receive writes the body to disk and marks the record done.
func (u *Uploads) receive(w http.ResponseWriter, r *http.Request, key string, rec *record, putType string) (int, string) {
	tmp, err := u.createTemp()
	if err != nil {
		u.o.Log.Error("upload: temp file", "err", err)
		return diskStatus(err), "Could not store the file."
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := u.copyBody(w, r, tmp, rec.Size)
	switch {
	case errors.Is(err, errTooLong):
		return http.StatusRequestEntityTooLarge, "The file is larger than the slot."
	case errors.Is(err, errTimeout):
		return http.StatusRequestTimeout, "The upload was too slow."
	case errors.Is(err, errWrite):
		u.o.Log.Error("upload: write", "user", rec.User, "err", err)
		return diskStatus(err), "Could not store the file."
	case err != nil:
		return http.StatusBadRequest, "The upload broke off."
	case n != rec.Size:
		return http.StatusBadRequest, "The file is smaller than the slot."
	}
	if err := tmp.Sync(); err != nil {
		return diskStatus(err), "Could not store the file."
	}
	if err := tmp.Close(); err != nil {
		return diskStatus(err), "Could not store the file."
	}
	final := u.path(rec.File)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return diskStatus(err), "Could not store the file."
	}
	done = true // the temporary name is gone; final is cleaned below on error
	if err := syncDir(u.o.Dir); err != nil {
		os.Remove(final)
		return diskStatus(err), "Could not store the file."
	}
	gone := false
	err = u.srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			gone = true
			return nil
		}
		cur, err := getRecord(b, key)
		if err != nil {
			return err
		}
		if cur == nil {
			// Dropped meanwhile (account deleted, slot swept).
			gone = true
			return nil
		}
		if cur.Done {
			return errFinished // cannot happen: PUTs of a slot run one at a time
		}
		cur.Done = true
		if cur.Type == "" {
			cur.Type = putType
		}
		return putRecord(b, key, cur)
	})
	if errors.Is(err, errFinished) {
		return http.StatusConflict, "This file was uploaded already."
	}
	if err != nil || gone {
		os.Remove(final)
		if gone {
			return http.StatusGone, "The upload slot is gone."
		}
		u.o.Log.Error("upload: finish", "err", err)
		return diskStatus(err), "Could not store the file."
	}
	u.mu.Lock()
	u.stored += rec.Size
	u.mu.Unlock()
	return http.StatusCreated, ""
}

// tempFile is what a PUT writes to: an *os.File in Dir; tests put one
// in that runs out of space part way.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

func (u *Uploads) createTemp() (tempFile, error) {
	if u.newTemp != nil {
		return u.newTemp()
	}
	return os.CreateTemp(u.o.Dir, tmpPrefix+"*")
}

var (
	errFinished = errors.New("slot finished by another PUT")
	errTooLong  = errors.New("body longer than the slot")
	errTimeout  = errors.New("upload too slow")
	errWrite    = errors.New("write")
)

// copyBody copies at most size bytes of the body to f, reading one more
// to tell a body that goes over. The whole PUT must end by a deadline
// that grows with the size (PutGrace + size/MinRate), and each read must
// bring something within Stall: a client sending a byte a second holds
// one connection and one small buffer, and only until the deadline.
// The server's own one-minute ReadTimeout is replaced by these.
func (u *Uploads) copyBody(w http.ResponseWriter, r *http.Request, f io.Writer, size int64) (int64, error) {
	rc := http.NewResponseController(w)
	start := time.Now() // the real clock: deadlines are on the socket
	whole := start.Add(u.o.PutGrace + time.Duration(float64(size)/float64(u.o.MinRate)*float64(time.Second)))
	buf := make([]byte, 64<<10)
	var n int64
	for {
		dl := time.Now().Add(u.o.Stall)
		if dl.After(whole) {
			dl = whole
		}
		if err := rc.SetReadDeadline(dl); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return n, err
		}
		m, err := r.Body.Read(buf)
		if m > 0 {
			if n+int64(m) > size {
				return n, errTooLong
			}
			if _, werr := f.Write(buf[:m]); werr != nil {
				return n, fmt.Errorf("%w: %w", errWrite, werr)
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || time.Now().After(whole) {
				return n, errTimeout
			}
			return n, err
		}
	}
}

// diskStatus: a full disk (or the file system's quota) is 507, so the
// client knows it is the server's storage, not its file.
func diskStatus(err error) int {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// accountDeleted removes a deleted member's files (the store forgot the
// usage with the account already).
func (u *Uploads) accountDeleted(user string) {
	var files []string
	var freedRes, freedStored int64
	err := u.srv.Store.Update(func(tx *bolt.Tx) error {
		files, freedRes, freedStored = nil, 0, 0
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return userRecords(b, user, func(k string, r *record) error {
			files = append(files, r.File)
			freedRes += r.Size
			if r.Done {
				freedStored += r.Size
			}
			return deleteRecord(tx, b, k, r, false)
		})
	})
	if err != nil {
		u.o.Log.Error("upload: account deleted", "user", user, "err", err)
		return
	}
	for _, f := range files {
		u.removeFile(f)
	}
	u.mu.Lock()
	u.reserved -= freedRes
	u.stored -= freedStored
	u.mu.Unlock()
}

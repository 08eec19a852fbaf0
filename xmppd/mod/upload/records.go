package upload

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// The bucket holds, per slot, "s\x00"+key → record (JSON) and a member
// index "u\x00"+user+"\x00"+key → empty. key is the hex SHA-256 of the
// URL token: the database (and its backups) never holds a working URL.
var bucket = []byte("upload")

type record struct {
	User string `json:"u"`
	Name string `json:"n"` // the client's filename, made safe
	Type string `json:"t"` // media type as declared, checked; "" until the PUT says
	Size int64  `json:"s"`
	File string `json:"f"` // random name in Dir
	// Unix nanoseconds: when the slot was made, until when its PUT may
	// start, until when the file was to be served when the slot was made
	// (kept for older readers; the service now serves until Created plus
	// its current expiry, Uploads.expires).
	Created int64 `json:"c"`
	PutBy   int64 `json:"p"`
	Expires int64 `json:"e"`
	Done    bool  `json:"d,omitempty"`
}

func slotKey(key string) []byte       { return store.Key("s", key) }
func userKey(user, key string) []byte { return store.Key("u", user, key) }
func userPrefix(user string) []byte   { return append(store.Key("u", user), 0) }

// tokenLen is the URL token's length: 24 random bytes, base64url.
const tokenLen = 32

func newToken() string {
	b := make([]byte, 24)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// keyOf is the database key of a token, "" if it is not one we could
// have made (wrong length or alphabet): checked before anything is
// looked up, so no spelling of a path reaches the database or the disk.
func keyOf(token string) string {
	if len(token) != tokenLen {
		return ""
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newFileName() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// validFile reports whether name is one newFileName made (the only names
// the module ever opens, removes or renames to in Dir).
func validFile(name string) bool {
	if len(name) != 32 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil && strings.ToLower(name) == name
}

func getRecord(b *bolt.Bucket, key string) (*record, error) {
	v := b.Get(slotKey(key))
	if v == nil {
		return nil, nil
	}
	r := new(record)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("upload: record %s: %w", key, err)
	}
	return r, nil
}

func putRecord(b *bolt.Bucket, key string, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Put(slotKey(key), v); err != nil {
		return err
	}
	return b.Put(userKey(r.User, key), nil)
}

// deleteRecord removes a record and, when charge is set, gives its bytes
// back to the member's budget.
func deleteRecord(tx *bolt.Tx, b *bolt.Bucket, key string, r *record, charge bool) error {
	if err := b.Delete(slotKey(key)); err != nil {
		return err
	}
	if err := b.Delete(userKey(r.User, key)); err != nil {
		return err
	}
	if !charge {
		return nil
	}
	return store.Charge(tx, r.User, Kind, -r.Size, -1, store.Limit{})
}

// userRecords calls fn for each of user's records.
func userRecords(b *bolt.Bucket, user string, fn func(key string, r *record) error) error {
	p := userPrefix(user)
	c := b.Cursor()
	var keys []string
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		keys = append(keys, string(k[len(p):]))
	}
	for _, key := range keys {
		r, err := getRecord(b, key)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		if err := fn(key, r); err != nil {
			return err
		}
	}
	return nil
}

// allRecords calls fn for every record.
func allRecords(b *bolt.Bucket, fn func(key string, r *record) error) error {
	p := store.Key("s", "")
	c := b.Cursor()
	type kr struct {
		key string
		r   *record
	}
	var l []kr
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		r := new(record)
		if err := json.Unmarshal(v, r); err != nil {
			return fmt.Errorf("upload: record %x: %w", k, err)
		}
		l = append(l, kr{string(k[len(p):]), r})
	}
	for _, x := range l {
		if err := fn(x.key, x.r); err != nil {
			return err
		}
	}
	return nil
}

func (u *Uploads) path(file string) string { return filepath.Join(u.o.Dir, file) }

// removeFile removes one of our files; a missing one is fine.
func (u *Uploads) removeFile(file string) {
	if !validFile(file) {
		return
	}
	if err := os.Remove(u.path(file)); err != nil && !os.IsNotExist(err) {
		u.o.Log.Warn("upload: remove", "file", file, "err", err)
	}
}

// tmpPrefix starts the names of files being written (never served: no
// record names them).
const tmpPrefix = ".tmp-"

// recover runs at start: temporary files of PUTs a crash cut are removed,
// so are files no finished record names (renamed into place, but the
// crash came before the record said so); finished records whose file is
// gone are dropped and their bytes given back. Then the totals are
// counted.
func (u *Uploads) recover() error {
	ents, err := os.ReadDir(u.o.Dir)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	onDisk := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, tmpPrefix):
			os.Remove(filepath.Join(u.o.Dir, n))
		case validFile(n) && e.Type().IsRegular():
			onDisk[n] = true
		}
	}
	var reserved, stored int64
	err = u.srv.Store.Update(func(tx *bolt.Tx) error {
		reserved, stored = 0, 0
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return allRecords(b, func(key string, r *record) error {
			if r.Done && !onDisk[r.File] {
				u.o.Log.Warn("upload: file missing, record dropped", "file", r.File, "user", r.User)
				return deleteRecord(tx, b, key, r, true)
			}
			if r.Done {
				delete(onDisk, r.File) // named: kept
				stored += r.Size
			}
			reserved += r.Size
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("upload: recover: %w", err)
	}
	for f := range onDisk {
		u.removeFile(f)
	}
	u.reserved, u.stored = reserved, stored
	return syncDir(u.o.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// freeSpace is what an unprivileged writer may still use under dir.
func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("upload: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

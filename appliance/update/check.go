package update

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	tufconfig "github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Floors are what the agent never goes below, persisted in the update dir:
// a Pi has no battery clock and a feed can be replayed, so both the release
// and the time are remembered across reboots.
type Floors struct {
	// Release is the lowest release the box accepts: the one it committed.
	Release int `json:"release"`
	// Time is the latest time the box has verified metadata at. Expiry is
	// checked against max(clock, Time), so a clock reset to 1970 does not
	// make stale metadata fresh again.
	Time time.Time `json:"time"`
}

// LoadFloors reads dir/floors.json; a missing file is the zero floor.
func LoadFloors(dir string) (Floors, error) {
	var f Floors
	b, err := os.ReadFile(filepath.Join(dir, "floors.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("update floors: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("update floors: %w", err)
	}
	return f, nil
}

// SaveFloors writes dir/floors.json atomically. Floors only rise.
func SaveFloors(dir string, f Floors) error {
	old, err := LoadFloors(dir)
	if err == nil {
		f.Release = max(f.Release, old.Release)
		if old.Time.After(f.Time) {
			f.Time = old.Time
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("update floors: %w", err)
	}
	return config.WriteFileAtomic(filepath.Join(dir, "floors.json"), append(b, '\n'), 0o600)
}

// Refusals. Each leaves the running version alone.
var (
	ErrUpToDate  = errors.New("update: already running the newest release")
	ErrDowngrade = errors.New("update: feed offers an older release than the version floor")
	ErrNoTarget  = errors.New("update: feed has no release for this architecture")
)

// Client checks a feed and downloads from it.
type Client struct {
	Dir         string // the update state dir (state.Dir.Update())
	FeedURL     string // http(s)://… or file:///…
	TrustedRoot []byte // root metadata baked into the image
	Arch        string // GOARCH of this box
	Running     int    // release of the running firmware (0: unknown/dev)
	Now         func() time.Time
	HTTP        *http.Client
}

// Offer is a verified release the feed offers.
type Offer struct {
	Custom
	Name   string
	target *metadata.TargetFiles
}

// Length is the download size in bytes.
func (o *Offer) Length() int64 { return o.target.Length }

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 5 * time.Minute}
}

// Check fetches and verifies the feed's metadata (signatures, thresholds,
// versions, expiry against the time floor) and returns the release it
// offers if that is newer than both the running release and the floor.
func (c *Client) Check(ctx context.Context) (*Offer, error) {
	floors, err := LoadFloors(c.Dir)
	if err != nil {
		return nil, err
	}
	tufDir := filepath.Join(c.Dir, "tuf")
	if err := os.MkdirAll(tufDir, 0o700); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	root := c.TrustedRoot
	// A root rotated by an earlier check supersedes the baked-in one.
	if b, err := os.ReadFile(filepath.Join(tufDir, "root.json")); err == nil {
		root = b
	}
	if len(root) == 0 {
		return nil, errors.New("update: no trusted root")
	}
	feed := strings.TrimSuffix(c.FeedURL, "/")
	cfg, err := tufconfig.New(feed+"/metadata/", root)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	cfg.LocalMetadataDir = tufDir
	cfg.LocalTargetsDir = filepath.Join(c.Dir, "download")
	cfg.RemoteTargetsURL = feed + "/targets/"
	cfg.PrefixTargetsWithHash = false
	cfg.Fetcher = &fetcher{ctx: ctx, client: c.httpClient()}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("update: trusted root: %w", err)
	}
	ref := c.now().UTC()
	if floors.Time.After(ref) {
		ref = floors.Time
	}
	up.UnsafeSetRefTime(ref)
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("update: feed metadata refused: %w", err)
	}
	// Verified at ref: the clock (if it was ahead of the floor) is now
	// known to be consistent with signed, unexpired metadata.
	floors.Time = ref
	if err := SaveFloors(c.Dir, floors); err != nil {
		return nil, err
	}
	name := TargetName(c.Arch)
	ti, err := up.GetTargetInfo(name)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %v", ErrNoTarget, name, err)
	}
	o := &Offer{Name: name, target: ti}
	if ti.Custom == nil || json.Unmarshal(*ti.Custom, &o.Custom) != nil || o.Release <= 0 {
		return nil, fmt.Errorf("update: target %s has no release number", name)
	}
	if o.Release < floors.Release || o.Release < c.Running {
		return nil, fmt.Errorf("%w: feed has release %d, floor %d, running %d", ErrDowngrade, o.Release, floors.Release, c.Running)
	}
	if o.Release == c.Running || o.Release == floors.Release {
		return nil, ErrUpToDate
	}
	return o, nil
}

// Download fetches the offer's file into the update dir, resuming a partial
// download, and returns the path of the file only after its length and
// SHA-256 match the signed metadata. A file that does not match is deleted.
func (c *Client) Download(ctx context.Context, o *Offer) (string, error) {
	dir := filepath.Join(c.Dir, "download")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("update: %w", err)
	}
	sum := hex.EncodeToString(o.target.Hashes["sha256"])
	if len(sum) < 16 {
		return "", fmt.Errorf("update: target %s has no sha256", o.Name)
	}
	final := filepath.Join(dir, o.Name+"."+sum[:16])
	part := final + ".part"
	if data, err := os.ReadFile(final); err == nil {
		// Downloaded and verified before (an install that failed later):
		// verify again, since it sat on disk in between.
		if o.target.VerifyLengthHashes(data) == nil {
			return final, nil
		}
		os.Remove(final)
	}
	if err := c.fetchResume(ctx, strings.TrimSuffix(c.FeedURL, "/")+"/targets/"+o.Name, part, o.target.Length); err != nil {
		return "", err
	}
	data, err := os.ReadFile(part)
	if err != nil {
		return "", fmt.Errorf("update: %w", err)
	}
	if err := o.target.VerifyLengthHashes(data); err != nil {
		os.Remove(part)
		return "", fmt.Errorf("update: download of %s refused: %w", o.Name, err)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("update: %w", err)
	}
	return final, nil
}

// fetchResume appends to dst from its current size, up to length bytes.
func (c *Client) fetchResume(ctx context.Context, src, dst string, length int64) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > length {
		// Not ours to trust: start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	if have == length {
		return nil
	}
	body, err := c.open(ctx, src, have)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(f, io.LimitReader(body, length-have)); err != nil {
		return fmt.Errorf("update: download %s: %w", src, err)
	}
	return f.Sync()
}

// open returns the content of u from byte offset on.
func (c *Client) open(ctx context.Context, u string, offset int64) (io.ReadCloser, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("update: feed URL: %w", err)
	}
	if pu.Scheme == "file" {
		f, err := os.Open(pu.Path)
		if err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("update: download: %w", err)
	}
	switch {
	case offset > 0 && resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			// The server ignored the range: skip what we already have.
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("update: download: %w", err)
			}
		}
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("update: download %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

// fetcher gives go-tuf both http(s):// and file:// feeds.
type fetcher struct {
	ctx    context.Context
	client *http.Client
}

func (f *fetcher) DownloadFile(u string, maxLength int64, timeout time.Duration) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	var r io.ReadCloser
	if pu.Scheme == "file" {
		fl, err := os.Open(pu.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &metadata.ErrDownloadHTTP{StatusCode: http.StatusNotFound, URL: u}
		}
		if err != nil {
			return nil, err
		}
		r = fl
	} else {
		ctx := f.ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}
		}
		r = resp.Body
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxLength+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is longer than %d bytes", u, maxLength)}
	}
	return b, nil
}

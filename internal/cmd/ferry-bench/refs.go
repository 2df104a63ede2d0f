package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// httpClient keeps a connection per parallel request (the default keeps
// two per host and opens a new one for every other request).
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// image is one tagged image of the set, as the source registry serves it.
type image struct {
	Repo, Tag string
	MediaType string
	Digest    string
	Size      int64
}

func (i image) ref() string { return i.Repo + ":" + i.Tag }

// blob is a unique config or layer of the set, with one repository that
// holds it.
type blob struct {
	Repo   string
	Digest string
	Size   int64
}

// survey reads every image of the set from the registry at addr: its
// manifest digest and every unique blob below it.
func survey(ctx context.Context, addr string, refs []string) ([]image, []blob, error) {
	var images []image
	blobs := map[string]blob{}
	for _, ref := range refs {
		repo, tag, ok := strings.Cut(ref, ":")
		if !ok {
			return nil, nil, fmt.Errorf("reference %q has no tag", ref)
		}
		body, mt, dgst, err := getManifest(ctx, addr, repo, tag)
		if err != nil {
			return nil, nil, err
		}
		images = append(images, image{Repo: repo, Tag: tag, MediaType: mt, Digest: dgst, Size: int64(len(body))})
		if err := walk(ctx, addr, repo, body, blobs); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", ref, err)
		}
	}
	out := make([]blob, 0, len(blobs))
	for _, b := range blobs {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return images, out, nil
}

func walk(ctx context.Context, addr, repo string, body []byte, blobs map[string]blob) error {
	var m struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
		Config *struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	for _, c := range m.Manifests {
		child, _, _, err := getManifest(ctx, addr, repo, c.Digest)
		if err != nil {
			return err
		}
		if err := walk(ctx, addr, repo, child, blobs); err != nil {
			return err
		}
	}
	if m.Config != nil {
		blobs[m.Config.Digest] = blob{repo, m.Config.Digest, m.Config.Size}
	}
	for _, l := range m.Layers {
		blobs[l.Digest] = blob{repo, l.Digest, l.Size}
	}
	return nil
}

func getManifest(ctx context.Context, addr, repo, ref string) ([]byte, string, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, ref), nil)
	req.Header.Set("Accept", manifestAccept)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", fmt.Errorf("GET %s/%s manifest %s: %s", addr, repo, ref, resp.Status)
	}
	return body, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), nil
}

// headDigest returns the digest the registry at addr serves for repo:tag,
// or "" when it has no such tag.
func headDigest(ctx context.Context, addr, repo, tag string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), nil)
	req.Header.Set("Accept", manifestAccept)
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HEAD %s/%s:%s: %s", addr, repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest"), nil
}

// checkDigests compares every image at the destination with the source.
// It returns how many are missing or differ, and one example.
func checkDigests(ctx context.Context, addr string, images []image) (bad int, example string, err error) {
	for _, img := range images {
		got, err := headDigest(ctx, addr, img.Repo, img.Tag)
		if err != nil {
			return 0, "", err
		}
		if got != img.Digest {
			if bad == 0 {
				if got == "" {
					got = "missing"
				}
				example = fmt.Sprintf("%s: source %s, destination %s", img.ref(), img.Digest, got)
			}
			bad++
		}
	}
	return bad, example, nil
}

// fetchBlobs downloads every blob once into dir (not measured; it feeds
// the zstd and upload references).
func fetchBlobs(ctx context.Context, addr string, blobs []blob, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, b := range blobs {
		path := filepath.Join(dir, strings.ReplaceAll(b.Digest, ":", "-"))
		if fi, err := os.Stat(path); err == nil && fi.Size() == b.Size {
			continue
		}
		g.Go(func() error {
			f, err := os.Create(path + ".part")
			if err != nil {
				return err
			}
			defer f.Close()
			if err := getBlob(ctx, addr, b, f); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(path+".part", path)
		})
	}
	return g.Wait()
}

func getBlob(ctx context.Context, addr string, b blob, w io.Writer) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", addr, b.Repo, b.Digest), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET blob %s: %s", b.Digest, resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && n != b.Size {
		err = fmt.Errorf("GET blob %s: %d bytes, want %d", b.Digest, n, b.Size)
	}
	return err
}

// refGet is the download reference: a parallel GET of every unique blob
// to nowhere.
func refGet(ctx context.Context, addr string, blobs []blob, jobs int) (time.Duration, error) {
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, b := range blobs {
		g.Go(func() error { return getBlob(ctx, addr, b, io.Discard) })
	}
	err := g.Wait()
	return time.Since(start), err
}

// refUpload is the upload reference: every unique blob, read from dir,
// pushed once by a monolithic POST+PUT, jobs at a time, into one
// repository of an empty registry.
func refUpload(ctx context.Context, addr string, blobs []blob, dir string, jobs int) (time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: jobs}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, b := range blobs {
		g.Go(func() error {
			return upload(ctx, client, addr, "reference/blobs", b, filepath.Join(dir, strings.ReplaceAll(b.Digest, ":", "-")))
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

func upload(ctx context.Context, client *http.Client, addr, repo string, b blob, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", addr, repo), nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST upload: %s", resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", b.Digest)
	loc.RawQuery = q.Encode()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	put, _ := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), f)
	put.ContentLength = b.Size
	put.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(put)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT blob %s: %s", b.Digest, resp.Status)
	}
	return nil
}

// errSkip marks a tool that cannot run here; it is reported, not fatal.
var errSkip = errors.New("skipped")

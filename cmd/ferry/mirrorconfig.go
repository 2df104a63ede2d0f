package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferryproject/ferry/bundle"
	"github.com/ferryproject/ferry/internal/mirrorconfig"
	"github.com/ferryproject/ferry/internal/report"
)

const flagMirrorConfigOut = "mirror-config-out"

func mirrorConfigFlag() cli.Flag {
	return &cli.StringFlag{Name: flagMirrorConfigOut, Usage: "write what the cluster needs to pull the imported images from the mirror (containerd, CRI-O/podman, OpenShift, RKE2/k3s, kustomize, mapping.json) to the directory `DIR`"}
}

// checkMirrorConfigOut refuses, before the import, a --mirror-config-out
// that could not be written (mirrorconfig.CheckDir) or that has no mirror
// to describe.
func checkMirrorConfigOut(c *cli.Context, dest bundle.Destination) error {
	dir := c.String(flagMirrorConfigOut)
	if dir == "" {
		return nil
	}
	if dest.Layout != "" {
		return usagef("--%s needs a registry to describe: --to oci:DIR is not one", flagMirrorConfigOut)
	}
	if err := mirrorconfig.CheckDir(dir); err != nil {
		return usagef("--%s: %v", flagMirrorConfigOut, err)
	}
	return nil
}

// writeMirrorConfig writes the --mirror-config-out directory for the
// images of res; its warnings are printed and added to the --json
// document doc.
func writeMirrorConfig(c *cli.Context, e *env, dest bundle.Destination, res *bundle.ImportResult, doc *report.Import, plain bool) error {
	dir := c.String(flagMirrorConfigOut)
	if dir == "" {
		return nil
	}
	images := make([]mirrorconfig.Image, 0, len(res.Images))
	for _, img := range res.Images {
		images = append(images, mirrorconfig.Image{Source: img.Source, Destination: img.Destination, Digest: img.Digest})
	}
	cfg, err := mirrorconfig.New(images, mirrorconfig.Options{
		Registry:  dest.Registry,
		Insecure:  slices.Contains(c.StringSlice(flagInsecureRegistry), dest.Registry),
		PlainHTTP: plain,
	})
	if err == nil {
		err = mirrorconfig.Write(dir, cfg.Files())
	}
	if err != nil {
		return fmt.Errorf("the images were imported, but writing --%s failed: %w", flagMirrorConfigOut, err)
	}
	for _, w := range cfg.Warnings() {
		w = "--" + flagMirrorConfigOut + ": " + w
		e.warn(w)
		doc.Warnings = append(doc.Warnings, w)
	}
	return nil
}

// plainHTTP says whether the registry at hostport answered the import over
// plain HTTP only (a loopback or private address that does not speak TLS,
// or one named with --insecure-registry): the nodes must then be told
// http://.
func plainHTTP(hosts []bundle.HostTraffic, hostport string) bool {
	host, port := hostport, 0
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host = h
		port, _ = strconv.Atoi(p)
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	for _, h := range hosts {
		if h.Host != host {
			continue
		}
		plain := false
		for _, ep := range h.Endpoints {
			if port != 0 && ep.Port != port {
				continue
			}
			if ep.Scheme != "http" {
				return false
			}
			plain = true
		}
		return plain
	}
	return false
}

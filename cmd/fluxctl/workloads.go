package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	yaml "go.yaml.in/yaml/v3"

	"github.com/fluxd/fluxd/server/api"
)

type listWorkloadsCmd struct {
	Namespace     string `name:"namespace" short:"n" help:"Namespace to list (default: default)."`
	AllNamespaces bool   `name:"all-namespaces" short:"a" help:"List every namespace."`
	Container     string `name:"container" short:"c" help:"Only workloads with a container of this name."`
}

func (l listWorkloadsCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ns := l.Namespace
	switch {
	case l.AllNamespaces && ns != "":
		return fmt.Errorf("give --namespace or --all-namespaces, not both")
	case l.AllNamespaces:
		ns = ""
	case ns == "":
		ns = "default"
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	ws, err := c.ListWorkloads(ctx, ns)
	if err != nil {
		return err
	}
	if l.Container != "" {
		kept := ws[:0]
		for _, w := range ws {
			for _, ct := range w.Containers {
				if ct.Name == l.Container {
					kept = append(kept, w)
					break
				}
			}
		}
		ws = kept
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID.String() < ws[j].ID.String() })
	if g.Output == "json" {
		if ws == nil {
			ws = []api.ControllerStatus{}
		}
		return printJSON(ws)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	writeWorkloads(w, ws)
	return w.Flush()
}

// writeWorkloads writes the list-workloads table, one row per container:
//
//	WORKLOAD              CONTAINER  IMAGE                          RELEASE  POLICY
//	shop:deployment/cart  cart       ghcr.io/shop/cart:2.3.0        ready    locked
//	shop:deployment/web   nginx      nginx:1.27 (repo: nginx:1.28)  ready
//	                      sidecar    envoy:1.30
//
// The image is the live one; "(repo: ...)" is the one git gives, when it
// is another (fluxd has not applied it, or something changed it since).
func writeWorkloads(w io.Writer, ws []api.ControllerStatus) {
	fmt.Fprintln(w, "WORKLOAD\tCONTAINER\tIMAGE\tRELEASE\tPOLICY")
	for _, wl := range ws {
		release := status(wl)
		policy := policies(wl)
		if len(wl.Containers) == 0 {
			fmt.Fprintf(w, "%s\t\t\t%s\t%s\n", wl.ID, release, policy)
		}
		for i, ct := range wl.Containers {
			id := wl.ID.String()
			if i > 0 {
				id, release, policy = "", "", ""
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", id, ct.Name, containerImage(ct), release, policy)
		}
	}
}

// containerImage is the IMAGE column: the live image, and git's beside it
// when it differs.
func containerImage(c api.Container) string {
	img := string(c.Current.ID)
	if c.RepoImage != "" && c.RepoImage != img {
		img += " (repo: " + c.RepoImage + ")"
	}
	return img
}

// status is the RELEASE column, as Flux v1 shows it.
func status(w api.ControllerStatus) string {
	s := w.Status
	if w.Status == api.StatusUpdating || w.Rollout.Desired != w.Rollout.Ready {
		s = fmt.Sprintf("%s (%d/%d)", w.Status, w.Rollout.Ready, w.Rollout.Desired)
	}
	if w.SyncError != "" {
		s += " sync error: " + w.SyncError
	}
	if w.ReadOnly != "" {
		s += " [" + string(w.ReadOnly) + "]"
	}
	return s
}

func policies(w api.ControllerStatus) string {
	var ps []string
	if w.Automated {
		ps = append(ps, "automated")
	}
	if w.Locked {
		ps = append(ps, "locked")
	}
	if w.Ignore {
		ps = append(ps, "ignore")
	}
	var tags []string
	for k, v := range w.Policies {
		if strings.HasPrefix(k, "tag.") {
			tags = append(tags, k+"="+v)
		}
	}
	sort.Strings(tags)
	return strings.Join(append(ps, tags...), ",")
}

type saveCmd struct {
	Out string `name:"out" type:"path" help:"Write one file per object under this directory, instead of one stream to stdout."`
}

func (s saveCmd) Run(g *globals) error {
	if g.Output == "json" {
		return fmt.Errorf("fluxctl save writes YAML, not JSON: leave out -o json")
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	data, err := c.Export(ctx)
	if err != nil {
		return err
	}
	if s.Out == "" {
		_, err := os.Stdout.Write(data)
		return err
	}
	return splitObjects(data, s.Out)
}

// splitObjects writes each document to <dir>/<namespace>/<name>-<kind>.yaml
// (cluster-scoped objects at the top).
func splitObjects(data []byte, dir string) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	n := 0
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			return fmt.Errorf("fluxd's export does not parse: %w", err)
		}
		var meta struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		if err := doc.Decode(&meta); err != nil || meta.Kind == "" || meta.Metadata.Name == "" {
			continue
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, meta.Metadata.Namespace, fmt.Sprintf("%s-%s.yaml", meta.Metadata.Name, strings.ToLower(meta.Kind)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(os.Stderr, "Wrote %d objects under %s\n", n, dir)
	return nil
}

type identityCmd struct {
	Regenerate  bool `name:"regenerate" short:"r" help:"Make a new deploy key (then install it in the git host)."`
	Fingerprint bool `name:"fingerprint" short:"l" help:"Show the key's fingerprint instead of the key."`
	Visual      bool `name:"visual" short:"v" help:"With -l, also show the randomart."`
	SHA256      bool `name:"sha256" help:"With -l, show the SHA256 fingerprint rather than MD5."`
}

func (i identityCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	cfg, err := c.GitRepoConfig(ctx, i.Regenerate)
	if err != nil {
		return err
	}
	key := cfg.PublicSSHKey
	if g.Output == "json" {
		return printJSON(key)
	}
	if key.Key == "" {
		return fmt.Errorf("fluxd has no ssh deploy key: it reaches %s without one", cfg.Remote.URL)
	}
	if !i.Fingerprint {
		fmt.Print(key.Key)
		return nil
	}
	fp := key.Fingerprints["md5"]
	if i.SHA256 {
		fp = key.Fingerprints["sha256"]
	}
	fmt.Println(fp.Hash)
	if i.Visual {
		fmt.Print(fp.Randomart)
	}
	return nil
}

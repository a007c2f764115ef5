package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxd/fluxd/images/filter"
	"github.com/fluxd/fluxd/kube/resource"
	"github.com/fluxd/fluxd/server/api"
)

// listImagesCmd is Flux v1's list-images. The table shows, for each
// container, its image repository and then its tags, newest first as the
// container's tag filter orders them (by version for semver: filters, by
// creation time otherwise):
//
//	WORKLOAD                 CONTAINER  IMAGE                             CREATED
//	shop:deployment/cart     cart       ghcr.io/shop/cart (filter semver:~2.3)
//	                                    |   2.4.0 (filtered out)          09 Mar 24 08:00 UTC
//	                                    |   2.3.1                         08 Mar 24 08:00 UTC
//	                                    '-> 2.3.0                         01 Mar 24 08:00 UTC
//	                                        2.2.0 (filtered out)          01 Feb 24 08:00 UTC
//	                                    :   (3 more image(s); --limit 0 shows all)
//
// With --limit, a running tag further down is shown after a line saying how
// many were left out before it; a running tag the registry does not have
// (any more) is shown last, "(not in the registry)".//
// '->' marks the running tag; "(filtered out)" marks the tags the tag filter
// rejects, which automation and `release --update-all-images` never pick
// (without an explicit filter, glob:* rejects only "latest"). When fluxd has
// no images for the repository, the CREATED column says why (e.g. "image data
// not available yet: the repository has not been scanned").
type listImagesCmd struct {
	Workload      string `name:"workload" short:"w" help:"Show only this workload: <namespace>:<kind>/<name>, or <kind>/<name> in --namespace."`
	Namespace     string `name:"namespace" short:"n" help:"Namespace to list, and of a --workload given as <kind>/<name> (default: default)."`
	AllNamespaces bool   `name:"all-namespaces" short:"a" help:"List every namespace."`
	Limit         int    `name:"limit" short:"l" default:"10" help:"Show at most this many images per container (the running one is shown in any case); 0 shows all."`
	NoHeaders     bool   `name:"no-headers" help:"Leave out the header line."`
}

func (l listImagesCmd) Validate() error {
	if l.Limit < 0 {
		return fmt.Errorf("--limit %d: use 0 (all) or more", l.Limit)
	}
	if l.AllNamespaces && l.Namespace != "" {
		return errors.New("give --namespace or --all-namespaces, not both")
	}
	if l.AllNamespaces && l.Workload != "" && !strings.Contains(l.Workload, ":") {
		return errors.New("--workload <kind>/<name> needs a namespace: give <namespace>:<kind>/<name>, or --namespace instead of --all-namespaces")
	}
	return nil
}

// query is what Flux v1's fluxctl sends: a namespace and service=<all>, or
// no namespace and the workload's ID.
func (l listImagesCmd) query() (namespace, service string, id resource.ID, err error) {
	ns := l.Namespace
	if ns == "" {
		ns = "default"
	}
	if l.Workload != "" {
		s := l.Workload
		if !strings.Contains(s, ":") {
			s = ns + ":" + s
		}
		if id, err = resource.ParseID(s); err != nil {
			return "", "", id, fmt.Errorf("--workload %q: %w", l.Workload, err)
		}
		return "", id.String(), id, nil
	}
	if l.AllNamespaces {
		ns = ""
	}
	return ns, string(api.ResourceSpecAll), id, nil
}

func (l listImagesCmd) Run(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	namespace, service, id, err := l.query()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.Timeout)
	defer cancel()
	ws, err := c.ListImages(ctx, namespace, service)
	if err != nil {
		return err
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID.String() < ws[j].ID.String() })
	if g.Output == "json" {
		limitAvailable(ws, l.Limit)
		if ws == nil {
			ws = []api.ImageStatus{}
		}
		return printJSON(ws)
	}
	// The tag filters, to mark the tags they reject: from list-workloads,
	// as list-images does not carry them. Without them no tag is marked.
	policyNS := namespace
	if service != string(api.ResourceSpecAll) {
		policyNS = id.Namespace
	}
	filters := map[string]map[string]string{}
	if statuses, err := c.ListWorkloads(ctx, policyNS); err == nil {
		for _, s := range statuses {
			filters[s.ID.String()] = s.Policies
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	writeImages(w, ws, filters, l.Limit, !l.NoHeaders)
	return w.Flush()
}

// limitAvailable keeps the first limit images of each container (all for
// 0), as Flux v1's fluxctl does for -o json too.
func limitAvailable(ws []api.ImageStatus, limit int) {
	if limit <= 0 {
		return
	}
	for i := range ws {
		for j := range ws[i].Containers {
			c := &ws[i].Containers[j]
			if len(c.Available) > limit {
				c.Available = c.Available[:limit]
			}
		}
	}
}

// writeImages writes the table. policies maps workload IDs to their
// policies, for the tag filters. Each container shows at most limit images
// (0: all), and its running one in any case.
func writeImages(w io.Writer, ws []api.ImageStatus, policies map[string]map[string]string, limit int, headers bool) {
	if headers {
		fmt.Fprintln(w, "WORKLOAD\tCONTAINER\tIMAGE\tCREATED")
	}
	for _, wl := range ws {
		name := wl.ID.String()
		if len(wl.Containers) == 0 {
			fmt.Fprintf(w, "%s\t\t\t\n", name)
			continue
		}
		for _, c := range wl.Containers {
			writeContainer(w, name, c, policies[wl.ID.String()][resource.PolicyTagPrefix+c.Name], limit)
			name = ""
		}
	}
}

func writeContainer(w io.Writer, workload string, c api.Container, tagFilter string, limit int) {
	repo, curTag, curDigest := splitImageRef(string(c.Current.ID))
	if curTag == "" && curDigest == "" {
		curTag = "latest"
	}
	head := repo
	var f *filter.Filter
	if tagFilter != "" {
		if parsed, err := filter.Parse(tagFilter); err == nil {
			f = &parsed
			head += " (filter " + parsed.String() + ")"
		} else {
			head += " (filter " + tagFilter + ", which does not parse)"
		}
	} else {
		all := filter.All
		f = &all
	}
	note := c.AvailableError
	if len(c.Available) == 0 && note == "" {
		note = api.NoImageData
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", workload, c.Name, head, note)

	running := func(i api.Info) bool {
		_, tag, digest := splitImageRef(string(i.ID))
		if curDigest != "" {
			return i.Digest == curDigest || digest == curDigest
		}
		return tag == curTag
	}
	found, omitted := false, 0
	for i, img := range c.Available {
		_, tag, _ := splitImageRef(string(img.ID))
		marker := "|  "
		isRunning := running(img)
		switch {
		case isRunning:
			marker, found = "'->", true
		case found:
			marker = "   "
		}
		if limit > 0 && i >= limit && !isRunning {
			omitted++
			continue
		}
		if omitted > 0 {
			fmt.Fprintf(w, "\t\t:   (%d image(s) omitted)\t\n", omitted)
			omitted = 0
		}
		if f != nil && !f.Match(tag) {
			tag += " (filtered out)"
		}
		fmt.Fprintf(w, "\t\t%s %s\t%s\n", marker, tag, created(img.CreatedAt))
	}
	if omitted > 0 {
		fmt.Fprintf(w, "\t\t:   (%d more image(s); --limit 0 shows all)\t\n", omitted)
	}
	if !found && c.Current.ID != "" {
		shown := curTag
		if curDigest != "" {
			shown = curDigest
			if len(shown) > 19 {
				shown = shown[:19] // sha256: and 12 hex digits
			}
		}
		if len(c.Available) > 0 && c.AvailableError == "" {
			shown += " (not in the registry)"
		}
		when := "?"
		if !c.Current.CreatedAt.IsZero() {
			when = created(c.Current.CreatedAt)
		}
		fmt.Fprintf(w, "\t\t'-> %s\t%s\n", shown, when)
	}
}

func created(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC822)
}

// splitImageRef splits "[domain/]path[:tag][@digest]".
func splitImageRef(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

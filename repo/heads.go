package repo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/store"
)

// Head is the record of a scope's head: the snapshot last committed for a
// service, account and region, stored as heads/<hex>.json (see
// [HeadName]). A head is a hint for deduplication, nothing more: writers
// replace it without condition after each commit, the last one winning,
// and readers treat one that is missing, damaged or pointing at a
// snapshot that is gone as no head at all.
type Head struct {
	Service  string        `json:"service"`
	Account  string        `json:"account"`
	Region   string        `json:"region"`
	Snapshot digest.Digest `json:"snapshot"` // the id of the snapshot committed
	Updated  time.Time     `json:"updated"`  // when it was written, UTC
}

// headFields are the JSON fields of a stored head, each required.
var headFields = []string{"service", "account", "region", "snapshot", "updated"}

// decodeHead decodes the stored record of the head whose name holds the
// hex digits scope, strictly (see decodeRecord): it must name a scope
// whose head is stored under that name, and a valid id. A failure
// matches core.ErrCorrupt and names the object.
func decodeHead(scope string, data []byte) (Head, error) {
	var h Head
	err := decodeRecord(data, &h, headFields)
	name := headsPrefix + scope + jsonExt
	switch {
	case err != nil:
	case HeadName(h.Service, h.Account, h.Region) != name:
		err = fmt.Errorf("it names the scope %q/%q/%q, whose head is stored elsewhere", h.Service, h.Account, h.Region)
	case !h.Snapshot.IsValid():
		err = fmt.Errorf("snapshot %q is not a snapshot id (sha256:<64 lowercase hex digits>)", h.Snapshot)
	}
	if err != nil {
		return Head{}, fmt.Errorf("repo: head %s: %w: %w", name, core.ErrCorrupt, err)
	}
	return h, nil
}

// WriteHead records id as the head of the scope (service, account,
// region), replacing any head it had, without condition: of concurrent
// writers, the last one wins. Writers call it once a snapshot of that
// scope is committed.
func (r *Repo) WriteHead(ctx context.Context, service, account, region string, id digest.Digest) error {
	if err := checkDigest("write head", id); err != nil {
		return err
	}
	data, err := encodeRecord(Head{Service: service, Account: account, Region: region, Snapshot: id, Updated: r.now().UTC()})
	if err != nil {
		return fmt.Errorf("repo: write head: %w", err)
	}
	return r.st.PutBytes(ctx, HeadName(service, account, region), data, store.PutOptions{ContentType: jsonType})
}

// ReadHead returns the head of the scope (service, account, region). A
// missing head is an error matching core.ErrNotFound; a record that does
// not decode strictly, names another scope or no valid id, or exceeds 64
// KiB, one matching core.ErrCorrupt. It does not check that the snapshot
// exists.
func (r *Repo) ReadHead(ctx context.Context, service, account, region string) (Head, error) {
	name := HeadName(service, account, region)
	scope, _ := ParseHeadName(name)
	return r.readHead(ctx, scope)
}

// ReadHeadScope returns the head stored under the hex digits scope, as
// [Repo.ListHeads] lists them (see [Repo.ReadHead]).
func (r *Repo) ReadHeadScope(ctx context.Context, scope string) (Head, error) {
	if !digest.IsHex(scope) {
		return Head{}, fmt.Errorf("repo: head scope %q: want 64 lowercase hex digits: %w", scope, core.ErrInvalid)
	}
	return r.readHead(ctx, scope)
}

func (r *Repo) readHead(ctx context.Context, scope string) (Head, error) {
	data, err := r.readRecord(ctx, headsPrefix+scope+jsonExt)
	if err != nil {
		return Head{}, err
	}
	return decodeHead(scope, data)
}

// ListHeads returns the hex digits naming the scope of every stored head,
// sorted (see [ParseHeadName]). Objects under heads/ with other names are
// left out.
func (r *Repo) ListHeads(ctx context.Context) ([]string, error) {
	var scopes []string
	err := r.st.List(ctx, headsPrefix, func(info store.ObjectInfo) error {
		if scope, ok := ParseHeadName(info.Name); ok {
			scopes = append(scopes, scope)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(scopes)
	return scopes, nil
}

// DeleteHead removes the head stored under the hex digits scope. A
// missing head is an error matching core.ErrNotFound.
func (r *Repo) DeleteHead(ctx context.Context, scope string) error {
	if !digest.IsHex(scope) {
		return fmt.Errorf("repo: head scope %q: want 64 lowercase hex digits: %w", scope, core.ErrInvalid)
	}
	return r.st.Delete(ctx, headsPrefix+scope+jsonExt)
}

package gocloudstore_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	_ "github.com/statebucket/statebucket/store/gocloudstore"
	"github.com/statebucket/statebucket/store/storetest"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// openURL opens rawURL through the scheme registry, as users do, and
// returns its driver.
func openURL(t *testing.T, rawURL string) store.Driver {
	t.Helper()
	st, err := store.Open(t.Context(), rawURL)
	require.NoError(t, err)
	return st.Driver()
}

func TestConformanceMem(t *testing.T) {
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver { return openURL(t, "mem://") })
}

func TestConformanceFile(t *testing.T) {
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		u := url.URL{Scheme: "gocloud+file", Path: t.TempDir()}
		return openURL(t, u.String())
	})
}

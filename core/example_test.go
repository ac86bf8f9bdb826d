package core_test

import (
	"context"
	"fmt"

	"github.com/statebucket/statebucket/core"
)

// A service keeps a StateChangeNotifier and calls NotifyStateChanged after
// each mutation, outside its lock; listeners get the view of the new
// state.
func ExampleStateChangeNotifier() {
	var n core.StateChangeNotifier[map[string]string]
	cancel := n.Subscribe(func(_ context.Context, acct, region string, view map[string]string) {
		fmt.Println(acct, region, view["greeting"])
	})
	defer cancel()
	n.Notify(context.Background(), "123456789012", "eu-west-1", map[string]string{"greeting": "hello"})
	// Output: 123456789012 eu-west-1 hello
}

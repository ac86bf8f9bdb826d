package digest_test

import (
	"fmt"

	"github.com/statebucket/statebucket/digest"
)

func Example() {
	d := digest.FromBytes([]byte("hello"))
	fmt.Println(d)
	fmt.Println(d.Short())

	parsed, err := digest.Parse(d.String())
	fmt.Println(parsed == d, err)

	_, err = digest.Parse("sha256:HELLO")
	fmt.Println(err)
	// Output:
	// sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
	// 2cf24dba5fb0
	// true <nil>
	// digest: "sha256:HELLO" is not sha256:<64 lowercase hex digits>: invalid
}

package uci_test

import (
	"fmt"

	"github.com/meshnode/meshnode/internal/uci"
)

func Example() {
	f, err := uci.Parse("/etc/config/meshnode", []byte(`# shipped defaults
config meshnode 'main'
	option enabled '0'   # until provisioned

config uplink
	option interface 'wan'
`))
	if err != nil {
		panic(err)
	}
	up, err := f.Lookup("@uplink[-1]")
	if err != nil {
		panic(err)
	}
	if err := up.AddList("probe", "1.1.1.1"); err != nil {
		panic(err)
	}
	fmt.Print(string(f.Marshal()))
	// Output:
	// # shipped defaults
	// config meshnode 'main'
	// 	option enabled '0'   # until provisioned
	//
	// config uplink
	// 	option interface 'wan'
	// 	list probe '1.1.1.1'
}

func ExampleError() {
	_, err := uci.Parse("/etc/config/meshnode", []byte("config meshnode 'main'\n\toption foo-bar 1\n"))
	fmt.Println(err)
	// Output: /etc/config/meshnode:2: invalid option name "foo-bar"
}

// Command bao is OpenBao's CLI and server, built from the OpenBao Go module for imagegate's integration tests
// (see ../build-openbao.sh). It is the same entry point as OpenBao's own main.go.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}

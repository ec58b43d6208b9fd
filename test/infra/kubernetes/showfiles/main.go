// The test images' only program: prints each file named on the command line to stdout (a static `cat`, so an image
// needs no shell or libc), then, with -wait, sleeps until SIGTERM so a pod stays Running as long as a test needs.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	wait := flag.Bool("wait", false, "after printing, wait for SIGTERM or SIGINT instead of exiting")
	flag.Parse()
	status := 0
	for _, name := range flag.Args() {
		if err := show(name); err != nil {
			fmt.Fprintf(os.Stderr, "showfiles: %v\n", err)
			status = 1
		}
	}
	if *wait {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
	}
	os.Exit(status)
}

func show(name string) error {
	file, err := os.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = io.Copy(os.Stdout, file)
	return err
}

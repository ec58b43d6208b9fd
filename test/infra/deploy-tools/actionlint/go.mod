module imagegate.test/deploy-tools/actionlint

go 1.25.0

// Pin for test/infra/build-deploy-tools.sh, which runs `go build github.com/rhysd/actionlint/cmd/actionlint` in this
// directory with -mod=readonly, so actionlint is built with the dependency versions of its own go.mod (the indirect
// requirements below are exactly those). Nothing here imports these modules; do not run `go mod tidy` (it would
// empty the file). To update, run here:
//   GOFLAGS=-mod=mod go get github.com/rhysd/actionlint/cmd/actionlint@VERSION
require github.com/rhysd/actionlint v1.7.12

require (
	github.com/bmatcuk/doublestar/v4 v4.10.0 // indirect
	github.com/clipperhouse/uax29/v2 v2.7.0 // indirect
	github.com/fatih/color v1.19.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mattn/go-runewidth v0.0.21 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/robfig/cron/v3 v3.0.1 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.3 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.42.0 // indirect
)

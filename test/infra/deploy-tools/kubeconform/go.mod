module imagegate.test/deploy-tools/kubeconform

go 1.26

// Pin for test/infra/build-deploy-tools.sh, which runs `go build github.com/yannh/kubeconform/cmd/kubeconform` in this
// directory with -mod=readonly, so kubeconform is built with the dependency versions of its own go.mod (the indirect
// requirements below are exactly those). Nothing here imports these modules; do not run `go mod tidy` (it would
// empty the file). To update, run here:
//   GOFLAGS=-mod=mod go get github.com/yannh/kubeconform/cmd/kubeconform@VERSION
require github.com/yannh/kubeconform v0.8.0

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.2 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	golang.org/x/text v0.37.0 // indirect
	k8s.io/kube-openapi v0.0.0-20260603220949-865597e52e25 // indirect
	k8s.io/utils v0.0.0-20260210185600-b8788abfbbc2 // indirect
	sigs.k8s.io/yaml v1.6.0 // indirect
)

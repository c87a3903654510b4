// Package proto holds the generated protobuf and gRPC code of the connector
// wire protocol (connector.proto). It is internal: plugin authors use the
// Go types in plugins/sdk.
//
// Regenerate with `go generate ./plugins/sdk/...` after installing the pinned tools:
//
//	go install github.com/bufbuild/buf/cmd/buf@v1.75.0
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
package proto

//go:generate buf generate

package bundle_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferryproject/ferry/bundle"
)

// Example_writeAndRead writes a one-image bundle by hand with Writer, then
// reads it back sequentially, as `ferry import -` does from a pipe.
func Example_writeAndRead() {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not really a layer")
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		ocispec.MediaTypeImageManifest, cfgDesc.MediaType, cfgDesc.Digest, cfgDesc.Size, layerDesc.MediaType, layerDesc.Digest, layerDesc.Size))
	mDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	index := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"example.com/app:1.0"}}]}`,
		ocispec.MediaTypeImageIndex, mDesc.MediaType, mDesc.Digest, mDesc.Size, bundle.AnnotationRefName))

	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.EncoderOptions{})
	_ = w.WriteFile(bundle.LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`))
	_ = w.WriteFile(bundle.IndexFile, index)
	_ = w.WriteBlob(mDesc, bytes.NewReader(manifest))
	_ = w.WriteBlob(cfgDesc, bytes.NewReader(config))
	_ = w.WriteBlob(layerDesc, bytes.NewReader(layer))
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}

	r, err := bundle.NewReader(&buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	for _, img := range r.Images() {
		fmt.Println("image:", img.Ref)
	}
	for {
		desc, content, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		n, err := io.Copy(io.Discard, content) // verified against desc while read
		fmt.Println(desc.MediaType, n, err)
	}
	// Output:
	// image: example.com/app:1.0
	// application/vnd.oci.image.config.v1+json 78 <nil>
	// application/vnd.oci.image.layer.v1.tar+gzip 18 <nil>
}

// ExampleParseDestination shows how import maps a source reference.
func ExampleParseDestination() {
	dst, _ := bundle.ParseDestination("registry.local:5000/mirror")
	src, _ := bundle.ParseReference("nginx:1.27")
	fmt.Println(dst.Map(src, false) + ":" + src.Tag)
	fmt.Println(dst.Map(src, true) + ":" + src.Tag)
	// Output:
	// registry.local:5000/mirror/library/nginx:1.27
	// registry.local:5000/mirror/docker.io/library/nginx:1.27
}

// ExampleNewSignaturePolicy makes the policy of `ferry export
// --require-signature cosign.pub`: every image must carry a cosign
// signature by the key (ExportOptions.RequireSignature), or nothing is
// written.
func ExampleNewSignaturePolicy() {
	pub := []byte(`-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERxV5lb2UZBzJ9nG9ovzXT6AlLroU
bYjINntsPxf4Yb4WT6jqSsBFdYF1H67RsURMyHJ5zhZ3HokZkB95coZnDg==
-----END PUBLIC KEY-----
`)
	key, err := bundle.ParsePublisherKey("cosign.pub", pub)
	if err != nil {
		fmt.Println(err)
		return
	}
	policy, err := bundle.NewSignaturePolicy([]bundle.PublisherKey{key}, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := bundle.ExportOptions{RequireSignature: policy}
	fmt.Println(opts.RequireSignature != nil, key.Fingerprint())
	// Output: true sha256:cf91448688b04a99a56953e06df3b35a64d0e35e5d9d8c152b9995cbeb1f978a
}

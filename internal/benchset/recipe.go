package benchset

import (
	"fmt"
	"math/rand/v2"
)

// image is one tagged image of the set, of one platform or several (then
// pushed as an index).
type image struct {
	repo      string
	tags      []string // the first is the version; others are aliases such as latest
	mirrors   []string // other repositories that get the same tags
	oci       bool     // OCI media types; Docker v2 schema 2 otherwise
	version   string
	cmd       []string
	env       []string
	workdir   string
	platforms []*platform
}

type platform struct {
	arch, variant string
	layers        []*layer

	config, manifest               []byte
	configDigest, manifestDigest   string
	configMediaType, manifestMedia string
}

// recipe is the shape of a set before any file is read.
type recipe struct {
	layers []*layer // in the order the allocator fills them
	images []*image
}

func (r *recipe) add(l *layer) *layer {
	r.layers = append(r.layers, l)
	return l
}

// pair adds an amd64 and an arm64 build of a layer.
func (r *recipe) pair(name string, wAMD, wARM float64, createdBy, prefix string) (amd, arm *layer) {
	amd = r.add(&layer{name: name + "/amd64", weight: wAMD, createdBy: createdBy, prefix: prefix})
	arm = r.add(&layer{name: name + "/arm64", weight: wARM, createdBy: createdBy, prefix: prefix, arm: true})
	return amd, arm
}

// versions adds n versions of a layer, each one a few files away from the
// one before.
func (r *recipe) versions(name string, n int, weight float64, createdBy, prefix string, arm bool) []*layer {
	var out []*layer
	for v := range n {
		l := &layer{name: fmt.Sprintf("%s/v%d", name, v+1), weight: weight, createdBy: createdBy, prefix: prefix, arm: arm}
		if v > 0 {
			l.from, l.changes = out[v-1], 2+v%3
		}
		out = append(out, r.add(l))
	}
	return out
}

func single(arch string, layers ...*layer) []*platform {
	return []*platform{{arch: arch, layers: layers}}
}

func multi(amd, arm []*layer) []*platform {
	return []*platform{{arch: "amd64", layers: amd}, {arch: "arm64", variant: "v8", layers: arm}}
}

func cat(parts ...[]*layer) []*layer {
	var out []*layer
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ls(l ...*layer) []*layer { return l }

// sizedRecipe is a company registry: base images, runtimes, applications in
// several versions. large adds applications and versions. Weights are
// relative shares of the set's size.
func sizedRecipe(large bool) *recipe {
	r := &recipe{}
	pick := func(small, big int) int {
		if large {
			return big
		}
		return small
	}
	const tinyLayer = 2 << 10

	// Operating system bases, shared by almost everything.
	debA, debR := r.pair("debian-12", 60, 55, "ADD rootfs.tar.xz / # debian bookworm", "")
	alpA, alpR := r.pair("alpine-3.20", 6, 6, "ADD alpine-minirootfs.tar.gz /", "")
	ubu := r.add(&layer{name: "ubuntu-24.04/amd64", weight: 50, createdBy: "ADD ubuntu-noble-oci.tar.gz /"})
	dlA, dlR := r.pair("distroless-static", 3, 3, "COPY rootfs / # distroless static", "")
	r.images = append(r.images,
		&image{repo: "library/debian", tags: ls2("12"), cmd: []string{"bash"}, platforms: multi(ls(debA), ls(debR))},
		&image{repo: "library/alpine", tags: ls2("3.20"), oci: true, cmd: []string{"/bin/sh"}, platforms: multi(ls(alpA), ls(alpR))},
		&image{repo: "library/ubuntu", tags: ls2("24.04"), cmd: []string{"/bin/bash"}, platforms: single("amd64", ubu)},
		&image{repo: "library/distroless", tags: ls2("static"), oci: true, platforms: multi(ls(dlA), ls(dlR))},
	)

	// Language runtimes, each shared by a group of applications.
	python := ls(debA,
		r.add(&layer{name: "python-3.12/deps", weight: 35, createdBy: "RUN apt-get install -y --no-install-recommends libbz2-dev libffi-dev libssl-dev ..."}),
		r.add(&layer{name: "python-3.12/install", weight: 40, createdBy: "RUN ./configure --enable-optimizations && make -j && make install", prefix: "usr/local/"}),
		r.add(&layer{name: "python-3.12/pip", weight: 5, createdBy: "RUN python -m ensurepip && pip install --upgrade pip setuptools wheel", prefix: "usr/local/lib/python3.12/site-packages/"}),
	)
	node := ls(debA,
		r.add(&layer{name: "node-22/install", weight: 40, createdBy: "RUN curl -fsSL nodejs.tar.xz | tar -xJ -C /usr/local --strip-components=1", prefix: "usr/local/"}),
		r.add(&layer{name: "node-22/yarn", weight: 4, createdBy: "RUN npm install -g yarn", prefix: "usr/local/lib/node_modules/"}),
	)
	golang := ls(debA,
		r.add(&layer{name: "golang-1.26/deps", weight: 45, createdBy: "RUN apt-get install -y --no-install-recommends g++ gcc libc6-dev make pkg-config"}),
		r.add(&layer{name: "golang-1.26/go", weight: 70, createdBy: "RUN curl -fsSL go.linux-amd64.tar.gz | tar -xz -C /usr/local", prefix: "usr/local/go/"}),
	)
	temurin := ls(ubu, r.add(&layer{name: "temurin-21/jdk", weight: 80, createdBy: "RUN curl -fsSL jdk.tar.gz | tar -xz -C /opt/java/openjdk", prefix: "opt/java/openjdk/"}))
	ngA, ngR := r.pair("nginx-1.27", 8, 8, "RUN apk add --no-cache nginx", "")
	nginx := multi(ls(alpA, ngA), ls(alpR, ngR))
	pyMirrors := []string{"mirror/library/python"}
	var ngMirrors []string
	if large {
		ngMirrors = []string{"mirror/library/nginx"}
	}
	r.images = append(r.images,
		&image{repo: "library/python", tags: ls2("3.12"), mirrors: pyMirrors, cmd: []string{"python3"}, env: []string{"PYTHON_VERSION=3.12.9"}, platforms: single("amd64", python...)},
		&image{repo: "library/node", tags: ls2("22"), oci: true, cmd: []string{"node"}, env: []string{"NODE_VERSION=22.14.0"}, platforms: single("amd64", node...)},
		&image{repo: "library/golang", tags: ls2("1.26"), cmd: []string{"bash"}, env: []string{"GOLANG_VERSION=1.26.8", "GOPATH=/go"}, workdir: "/go", platforms: single("amd64", golang...)},
		&image{repo: "library/eclipse-temurin", tags: ls2("21"), oci: true, cmd: []string{"jshell"}, env: []string{"JAVA_HOME=/opt/java/openjdk"}, platforms: single("amd64", temurin...)},
		&image{repo: "library/nginx", tags: ls2("1.27"), mirrors: ngMirrors, cmd: []string{"nginx", "-g", "daemon off;"}, platforms: nginx},
	)

	// Applications: a dependency layer shared by versions, a top layer a few
	// files apart from one version to the next, and small layers.
	app := func(repo string, n int, oci bool, latest bool, cmd string, build func(v int) []*platform) {
		for v := range n {
			tags := ls2(fmt.Sprintf("1.%d.0", v))
			if latest && v == n-1 {
				tags = append(tags, "latest")
			}
			r.images = append(r.images, &image{repo: repo, tags: tags, oci: oci, version: tags[0], cmd: []string{cmd}, workdir: "/app", platforms: build(v)})
		}
	}

	nAPI := pick(4, 6)
	apiDeps := []*layer{
		r.add(&layer{name: "api/deps-a", weight: 30, createdBy: "RUN pip install -r requirements.txt", prefix: "usr/local/lib/python3.12/site-packages/"}),
		r.add(&layer{name: "api/deps-b", weight: 30, createdBy: "RUN pip install -r requirements.txt", prefix: "usr/local/lib/python3.12/site-packages/"}),
	}
	apiCode := r.versions("api/code", nAPI, 6, "COPY . /app", "app/", false)
	apiEntry := r.fixed("api/entrypoint", nAPI, tinyLayer, "COPY docker-entrypoint.sh /usr/local/bin/", "app/bin/")
	app("team/api", nAPI, false, true, "/app/bin/api", func(v int) []*platform {
		return single("amd64", cat(python, ls(apiDeps[v*2/nAPI], apiCode[v], apiEntry[v]))...)
	})

	nWeb := pick(3, 5)
	webMods := r.add(&layer{name: "web/node_modules", weight: 40, createdBy: "RUN yarn install --frozen-lockfile", prefix: "app/node_modules/"})
	webDist := r.versions("web/dist", nWeb, 8, "COPY --from=build /src/dist /app/dist", "app/dist/", false)
	app("team/web", nWeb, true, large, "node", func(v int) []*platform {
		return single("amd64", cat(node, ls(webMods, webDist[v]))...)
	})

	nWorker := pick(3, 4)
	binA := r.versions("worker/bin-amd64", nWorker, 6, "COPY worker /usr/local/bin/", "app/", false)
	binR := r.versions("worker/bin-arm64", nWorker, 6, "COPY worker /usr/local/bin/", "app/", true)
	app("team/worker", nWorker, true, true, "/app/worker", func(v int) []*platform {
		return multi(ls(dlA, binA[v]), ls(dlR, binR[v]))
	})

	nBilling := pick(2, 3)
	billLibs := r.add(&layer{name: "billing/libs", weight: 30, createdBy: "COPY build/libs /app/lib", prefix: "app/lib/"})
	billApp := r.versions("billing/app", nBilling, 5, "COPY build/app /app", "app/", false)
	app("team/billing", nBilling, false, large, "java", func(v int) []*platform {
		return single("amd64", cat(temurin, ls(billLibs, billApp[v]))...)
	})

	// The gateway's own layers are the same on both platforms, as COPY
	// layers of a multi-platform build are.
	nGW := pick(2, 3)
	gwStatic := r.versions("gateway/static", nGW, 4, "COPY static /usr/share/nginx/html", "usr/share/nginx/html/", false)
	gwConf := r.fixed("gateway/conf", nGW, tinyLayer, "COPY nginx.conf /etc/nginx/", "etc/nginx/")
	app("team/gateway", nGW, false, false, "nginx", func(v int) []*platform {
		return multi(ls(alpA, ngA, gwStatic[v], gwConf[v]), ls(alpR, ngR, gwStatic[v], gwConf[v]))
	})

	if large {
		ciTools := r.add(&layer{name: "ci-builder/tools", weight: 40, createdBy: "RUN go install ./tools/...", prefix: "go/bin/"})
		ciScripts := r.versions("ci-builder/scripts", 2, 3, "COPY scripts /ci", "ci/", false)
		app("team/ci-builder", 2, true, false, "bash", func(v int) []*platform {
			return single("amd64", cat(golang, ls(ciTools, ciScripts[v]))...)
		})
		etlDeps := r.add(&layer{name: "etl/deps", weight: 30, createdBy: "RUN pip install -r requirements.txt", prefix: "usr/local/lib/python3.12/site-packages/"})
		etlCode := r.versions("etl/code", 3, 5, "COPY . /app", "app/", false)
		app("data/etl", 3, true, false, "python3", func(v int) []*platform {
			return single("amd64", cat(python, ls(etlDeps, etlCode[v]))...)
		})
		sci := r.add(&layer{name: "notebook/scientific", weight: 80, createdBy: "RUN pip install numpy scipy pandas scikit-learn jupyterlab", prefix: "usr/local/lib/python3.12/site-packages/"})
		nb := r.versions("notebook/code", 2, 5, "COPY notebooks /app", "app/", false)
		app("data/notebook", 2, false, false, "jupyter", func(v int) []*platform {
			return single("amd64", cat(python, ls(sci, nb[v]))...)
		})
	}
	return r
}

// fixed adds n small layers of size bytes, one per version.
func (r *recipe) fixed(name string, n int, size int64, createdBy, prefix string) []*layer {
	var out []*layer
	for v := range n {
		out = append(out, r.add(&layer{name: fmt.Sprintf("%s/v%d", name, v+1), target: size, createdBy: createdBy, prefix: prefix}))
	}
	return out
}

func ls2(s ...string) []string { return s }

// Tiny sets: images in repositories of tinyPerRepo tags, every other one
// on one of tinyBases shared base layers.
const (
	tinyPerRepo = 4
	tinyBases   = 4
)

// tinyRecipe is n one-layer images. Image i depends only on i and the seed.
func tinyRecipe(n int, seed int64) *recipe {
	r := &recipe{}
	var bases []*layer
	for b := range min(tinyBases, (n+1)/2) {
		bases = append(bases, r.add(&layer{name: fmt.Sprintf("tiny-base/%d", b), target: 3 << 10, createdBy: "ADD base.tar /"}))
	}
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		own := r.add(&layer{name: fmt.Sprintf("tiny/%d", i), target: int64(1<<10 + rng.IntN(3<<10)), createdBy: "COPY . /app", prefix: "app/"})
		layers := ls(own)
		if i%2 == 0 {
			layers = ls(bases[(i/2)%tinyBases], own)
		}
		tag := fmt.Sprintf("1.0.%d", i%tinyPerRepo)
		r.images = append(r.images, &image{
			repo: fmt.Sprintf("tiny/app%04d", i/tinyPerRepo), tags: ls2(tag), oci: i%3 == 0, version: tag,
			cmd: []string{"/app/run"}, workdir: "/app", platforms: single("amd64", layers...),
		})
	}
	return r
}

# The two commands of the README: `make up` and `make test`. Both install first.
SHELL := /bin/bash
UV_VERSION := 0.13.9
# Debian packages the project needs on the machine: qemu-utils makes and inspects disk images in the
# image tests, genisoimage makes the ISO one; wrk drives the benchmarks; memcached is the cache of the
# real Swift that bench/objstore.py runs beside Stratus; chromium is the browser the dashboard's
# Playwright tests drive and nodejs brings npm, which installs axe-core for them (tests/browser).
# linux-image-amd64, busybox-static, dropbear-bin and e2fsprogs are what `stratus guest build` makes the
# guest image from (kernel and modules, userland, SSH server, mkfs.ext4 -d).
DEB_PACKAGES := qemu-utils genisoimage wrk memcached chromium nodejs qemu-system-x86 iproute2 nftables dnsmasq-base conntrack busybox-static iputils-ping linux-image-amd64 dropbear-bin e2fsprogs
STATE_DIR ?= state

.PHONY: install up test lint bench
install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock tests/browser/package-lock.json
	@if [ -n "$(DEB_PACKAGES)" ]; then \
	  missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	fi
	test -x .tools/bin/uv || { python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION); }
	.tools/bin/uv sync --frozen
	npm ci --prefix tests/browser --ignore-scripts --no-audit --no-fund
	touch $@

up: install
	.venv/bin/stratus up --state-dir $(STATE_DIR)

test: install
	.venv/bin/pytest -q -ra

lint: install
	.venv/bin/ruff check stratus tests bench
	.venv/bin/mypy stratus

bench: install
	.venv/bin/python bench/identity.py --keystone-cache
	.venv/bin/python bench/image.py
	.venv/bin/python bench/network.py
	.venv/bin/python bench/compute.py
	.venv/bin/python bench/objstore.py
	.venv/bin/python bench/volume.py
	.venv/bin/python bench/boot.py

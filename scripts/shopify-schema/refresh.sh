#!/bin/sh
# Refreshes tests/fixtures/shopify/admin_<version>.graphql from Shopify's published Admin schema.
# Usage: scripts/shopify-schema/refresh.sh [dev-mcp version] [api version]
# Needs npm (to fetch the package) and python3; tests never run this (no network at test time).
set -eu
pkg_version="${1:-1.16.0}"
api_version="${2:-2026-10}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@shopify/dev-mcp@${pkg_version}" >/dev/null)
python3 "$here/extract.py" "$work/shopify-dev-mcp-${pkg_version}.tgz" "$api_version"

// Package layers keeps the bases sessions stand on.
//
// On disk, under the store root:
//
//	bases/<name>.json   a base: its ordered list of layers (top first) and metadata
//	layers/<id>/        one immutable directory tree; never written after import
//	tmp/                imports in progress; renamed into layers/ when complete
//
// The built-in base "host" is the machine's own root filesystem. It has no
// file and no layer: its single lower dir is "/".
package layers

#!/usr/bin/env bash
# Regenerates src/thrift/tcli.rs from thrift/TCLIService.thrift.
#
# Run from the repository root after editing the IDL, and commit the result: building the
# crate never needs the Thrift compiler. Needs thrift-compiler 0.17.x (Debian/Ubuntu:
# `apt-get install thrift-compiler`) and perl.
#
# After generating, the output is patched in two ways:
#  1. Union readers: the 0.17 generator ends each union reader with
#     `Ok(ret.expect(...))`, which panics when the one field received has an id this IDL does
#     not know (e.g. a TColumn variant added by a newer server). It becomes a
#     ProtocolError(InvalidData) naming the union instead.
#  2. `impl Default` of all-optional structs: the generator fills optional fields with
#     `Some(<zero value>)` (empty strings, 0, false, empty maps), which would put those values on
#     the wire (e.g. `TStringValue::default()` would not be NULL, `TOpenSessionReq::default()`
#     would send client_protocol_i64 = 0). Every optional field defaults to `None` (unset).
set -euo pipefail

IDL=thrift/TCLIService.thrift
OUT=src/thrift/tcli.rs
GENERATED=t_c_l_i_service.rs
WANT_VERSION=0.17

if [[ ! -f "$IDL" || ! -d src/thrift ]]; then
  echo "error: run this script from the repository root (no $IDL here)" >&2
  exit 1
fi

if ! command -v thrift >/dev/null 2>&1; then
  echo "error: the thrift compiler is not installed." >&2
  echo "       install version ${WANT_VERSION}.x, e.g.: apt-get install thrift-compiler" >&2
  exit 1
fi

version=$(thrift --version | awk '{print $3}')
if [[ "$version" != ${WANT_VERSION}.* ]]; then
  echo "error: thrift compiler $version found, ${WANT_VERSION}.x required" >&2
  echo "       (the checked-in code and the thrift crate are matched to ${WANT_VERSION};" >&2
  echo "        Debian bookworm / Ubuntu 24.04: apt-get install thrift-compiler)" >&2
  exit 1
fi

if ! command -v perl >/dev/null 2>&1; then
  echo "error: perl is required to post-process the generated code" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

thrift -nowarn --gen rs -out "$tmp" "$IDL"
if [[ ! -f "$tmp/$GENERATED" ]]; then
  echo "error: the generator did not write $GENERATED" >&2
  exit 1
fi

# 1. Union readers: no panic on an unknown variant.
perl -0pi -e '
  my $n = s{(received multiple fields for union from remote (\w+)"\s*\)\s*\)\s*\)\s*\}\s*else\s*\{\s*)Ok\(ret\.expect\("return value should have been constructed"\)\)}
           {${1}ret.ok_or_else(|| thrift::Error::Protocol(ProtocolError::new(ProtocolErrorKind::InvalidData, "received an unknown union variant from remote $2")))}g;
  $main::count = $n;
  END { print STDERR "regen-thrift: patched $main::count union readers\n"; }
' "$tmp/$GENERATED"
if grep -q 'return value should have been constructed' "$tmp/$GENERATED"; then
  echo "error: a union reader was left unpatched (generator output changed?)" >&2
  exit 1
fi

# 2. Defaults of optional fields: unset.
perl -pi -e '
  if (/^impl Default for \w+ \{/) { $in = 1 }
  elsif ($in && /^\}/) { $in = 0 }
  elsif ($in) { s/^(\s+\w+): Some\(.*\),$/$1: None,/ }
' "$tmp/$GENERATED"
if awk '/^impl Default for/{p=1} /^}/{p=0} p && /Some\(/' "$tmp/$GENERATED" | grep -q .; then
  echo "error: an optional field default was left as Some(..)" >&2
  exit 1
fi

{
  echo "// Generated from thrift/TCLIService.thrift by scripts/regen-thrift.sh: do not edit by hand."
  echo
  cat "$tmp/$GENERATED"
} > "$OUT"
echo "regen-thrift: wrote $OUT"

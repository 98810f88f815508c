#!/usr/bin/env bash
# Install everything the tests need (Debian packages + Python packages) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=""
[ -x /usr/bin/storescu ] || need="$need dcmtk"
[ -x /usr/sbin/Orthanc ] || need="$need orthanc"
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || ls /usr/lib/orthanc/*DicomWeb* >/dev/null 2>&1 || need="$need orthanc-dicomweb"
[ -x /usr/bin/dciodvfy ] || need="$need dicom3tools"
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -e /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || need="$need fonts-droid-fallback"  # CJK on cloud films
if [ -n "$need" ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
python3 -m pip install -q -e ".[test]"
exec python3 -m pytest -n 2 -p no:cacheprovider "$@"

#!/bin/sh
# Copies the screenshots the X11 tests saved in artifacts/ (tests/gui/test_tray_x11.py,
# tests/integration/test_gui_world.py) into the README's pictures, cropped.
# Run tests/run.sh (or those two tests) first.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
art="$here/../../artifacts"
crop() { convert "$art/$1" -crop "$2" +repage -strip "$here/$3"; }
crop x11-menu.png 350x258+674+0 tray-menu.png
crop x11-devices.png 1000x560+22+38 devices-window.png
crop x11-world-row-menu.png 560x300+0+28 device-menu.png
crop x11-world-pending.png 1000x560+22+38 vpn-pending.png
crop x11-world-ssh-terminal.png 1000x560+0+38 ssh-terminal.png
crop x11-no-tray-menu-bar.png 980x330+22+12 window-menu-bar.png
ls -l "$here"/*.png

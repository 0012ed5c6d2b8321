// Package profiles reads the device and role profiles under profiles/ and
// turns a (device, role) pair into what the OpenWrt ImageBuilder needs:
// the package list, the FILES overlay and the `make image` command line,
// after checking that our packages fit the device's flash.
//
// # Data files (UCI, read with internal/uci like package manifests)
//
// profiles/devices/<id>: one 'config device' section:
//
//	title, openwrt (release, e.g. 24.10.0), target, subtarget,
//	profile (ImageBuilder PROFILE), arch (package architecture),
//	flash, ram (sizes with K/M/G suffix),
//	image_max (largest sysupgrade image: IMAGE_SIZE of the device in
//	target/linux/<target>/image/*.mk), image_base (size of the stock image
//	with the ImageBuilder's default packages), list radio (2g, 5g),
//	agent (full, or lite for boards that cannot hold Nebula).
//
// profiles/roles/<id>: one 'config role' section:
//
//	title, agent_role (hub, relay, uplink, client or none), address
//	(default overlay address), list packages (ours, from packages/),
//	list lite_packages (ours, on devices with agent 'lite'; a role without
//	them cannot run there), list extra / wifi_extra (OpenWrt packages, '-x'
//	removes; wifi_extra only on devices with radios), extra_size and
//	wifi_extra_size (what those add, compressed), backbone (mesh, p2p or
//	none), ap (0/1), ntp_server (0/1).
//
// profiles/sizes: measured sizes of our packages per architecture
// (`meshkit profiles --measure` rewrites it).
//
// # Free space and the budget
//
// free = image_max - image_base: the room the firmware partition has for
// packages beyond a stock image. A role's need on a device is the sum of
// its packages' squashfs sizes for the device's architecture (each
// installed file compressed with xz -9e in 256 KiB blocks, as mksquashfs
// -comp xz -b 256K stores it) plus the estimated size of its OpenWrt
// extras. A combination is refused when free - need is below the headroom
// (default 256 KiB, as Gluon keeps). After a real build `meshkit image`
// checks the actual image against image_max with the same headroom.
package profiles

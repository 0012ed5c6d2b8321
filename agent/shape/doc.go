// Package shape enforces the share of a member's home connection donated
// to the mesh: HTB over rtnetlink on the WAN's egress for upload, and on an
// IFB fed from the WAN's ingress (ingress qdisc, u32 match-all, mirred
// redirect) for download — a queue, never a policer. tcmsg.go encodes and
// decodes the few tc messages this takes; Nebula's netlink library, linked
// in anyway, carries them.
//
// It is a reconcile loop like the rest of the agent: ParseConfig turns UCI
// into a Config, Apply validates it against the system (device exists,
// limits within link speed) and makes the kernel match, reading back the
// qdiscs, classes and filters and changing only what differs. Run re-applies
// at schedule boundaries (injected Clock), when a shaped interface or its
// IFB comes back, and when anyone deletes one of the qdiscs (netlink link
// and tc events). Stop removes everything. Status and WriteMetrics report
// per-class rate, bytes, packets, drops and backlog.
//
// # Configuration
//
// One `config shape` section per WAN in /etc/config/meshnode (rates in
// kbit/s, or with a kbit/mbit/gbit suffix; shares as "N%" of the limit in
// force, or a rate):
//
//	config shape 'wan'
//		option enabled '1'             # 0 skips the section
//		option device 'eth0'           # kernel interface of the WAN (required)
//		option upload '20000'          # egress limit; omit to leave upload unshaped
//		option download '50000'        # ingress limit; omit to leave download unshaped
//		option link_speed '100mbit'    # limits above it are rejected; default: sysfs speed
//		option ifb 'ifb4eth0'          # IFB for download (default ifb4<device>)
//		option overhead '0'            # bytes added per packet (PPPoE 8, VDSL 34, ...)
//		option mpu '0'                 # minimum accounted packet size
//		option linklayer 'ethernet'    # or atm (ADSL: 53-byte cells)
//		option burst_ms '1'            # burst as time at rate; raise on slow CPUs above 100 Mbit/s
//		option leaf 'fq_codel cake sfq bfifo'  # leaf qdisc preference; first the kernel has wins
//		list schedule '22:00-07:00 upload=40000 download=100000'  # daily, local time
//		option emergency_rate '10%'    # guarantee; ceil defaults to 100%
//		option emergency_ceil '100%'
//		option interactive_rate '30%'
//		option bulk_rate '60%'
//		list emergency_dscp 'EF'       # default EF CS6 CS7
//		list interactive_dscp 'AF41'   # default AF41 CS4 CS3 AF31
//		list interactive_port 'tcp:22' # [tcp:|udp:]PORT[-PORT], either end
//		list bulk_mark '0x10/0xff'     # firewall mark (upload only)
//		option emergency_builtin '1'   # ICMP, DNS, Nebula handshake/lighthouse/test
//		option nebula_port '4242'
//
// Classes are HTB 1:10 (emergency, prio 0), 1:20 (interactive, prio 1) and
// 1:30 (bulk, prio 2, also the default) under 1:1 at the limit. The
// guarantees must fit in the limit at every schedule window. A schedule
// window replaces the limits it names between its start and end; windows
// may cross midnight and must not overlap.
//
// Burst and cburst are max(burst_ms at the rate, one full packet), quantum
// 1 ms at the rate within [one packet, 200000]: HTB with too small a burst
// stays at 65-70 % of its rate (docs/facts-performance.md §3).
//
// The shaped device should carry only mesh traffic: the uplink node is a
// separate router whose WAN port is a client of the member's home router.
package shape

#!/bin/bash
# Samples every 0.5 s until the file $1 exists, from /proc/PID/status and /proc/meminfo only
# (smaps walks 13 GB of page tables and took a core): the peaks of
#   rss_sum   sum of VmRSS over c3po processes (counts pages the ranks share once per rank)
#   anon_sum  sum of RssAnon (private memory of the ranks)
#   mapped    Mapped of /proc/meminfo (file pages mapped by any process, each counted once)
stop=$1; mr=0; ma=0; mm=0; mn=0
while [ ! -e "$stop" ]; do
  r=0; a=0
  for pid in $(pgrep -x c3po); do
    while read -r k v _; do
      case $k in VmRSS:) r=$((r+v));; RssAnon:) a=$((a+v));; esac
    done < "/proc/$pid/status" 2>/dev/null
  done
  m=$(awk '/^Mapped:/ {print $2}' /proc/meminfo)
  [ $r -gt $mr ] && mr=$r; [ $a -gt $ma ] && ma=$a; [ "$m" -gt "$mm" ] && mm=$m
  n=$((a + m)); [ $n -gt $mn ] && mn=$n
  sleep 0.5
done
echo "rss_sum_kB=$mr anon_sum_kB=$ma mapped_kB=$mm node_kB=$mn"

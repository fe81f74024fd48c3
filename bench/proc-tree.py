#!/usr/bin/env python3
"""What a server's whole process tree costs: `cpu PID` prints the CPU
milliseconds (user + system) of PID and every descendant, including the
children they have already reaped; `mem PID` prints the tree's process
count, resident kB and proportional kB (PSS: shared pages divided among
the processes sharing them, so a forking server's many processes are not
counted many times over).

Usage: proc-tree.py cpu|mem PID
"""
import os
import sys


def children():
    kids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(pid))
    return kids


def tree(root):
    kids, out, todo = children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_ms(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime stime cutime cstime: fields 14-17 of stat(5)
        total += sum(int(x) for x in fields[11:15])
    return total * 1000 // tick


def mem_kb(pids):
    rss = pss = n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return n, rss, pss


if __name__ == "__main__":
    what, root = sys.argv[1], int(sys.argv[2])
    if what == "cpu":
        print(cpu_ms(tree(root)))
    else:
        print(*mem_kb(tree(root)))

//! Device access on cgroup v2: v2 has no `devices` controller; the kernel
//! asks a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup
//! instead. This module compiles `linux.resources.devices` (with the
//! standard and `linux.devices` nodes added, as on v1) into such a program.
//!
//! # Semantics
//!
//! As the v1 controller, and as runc's filter: the rules are read in order
//! and the **last** one that matches a request decides. The program checks
//! them from the last to the first and returns at the first match:
//!
//! - type: `a` matches both, `c` and `b` their own kind;
//! - major, minor: `-1` (or absent) matches any number;
//! - access: an **allow** rule matches when it grants every access asked
//!   for (`rw` is not granted by a rule of `r` alone); a **deny** rule
//!   matches when it names any access asked for (`w` denies an `rw` open).
//!
//! No rule matching allows, as a v1 cgroup inherits its parent's allow-all;
//! specs start with a deny-all rule, so in practice everything not allowed
//! is denied. One v1 case differs: allowing `r` and `w` of a device in two
//! separate rules does not allow an `rw` open here (runc merges such rules
//! first; no tool we know writes them).
//!
//! The program is attached with `BPF_F_ALLOW_MULTI`, so programs of the
//! parent cgroups (systemd's) still apply too: every one must allow.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One eBPF instruction, as the kernel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    pub code: u8,
    /// `dst | src << 4`.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// The opcodes used (see linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57; // dst &= imm
const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto +off
const JMP_JSET_K: u8 = 0x45; // if dst & imm goto +off
const JMP_JA: u8 = 0x05; // goto +off
const JMP_EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = access << 16 | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Registers: r1 the context, then r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The access bits of an OCI access string (`"rwm"`; absent: all).
fn access_bits(access: Option<&str>) -> i32 {
    match access {
        None => ACC_ALL,
        Some(a) => a.chars().fold(0, |bits, c| {
            bits | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        }),
    }
}

/// Compiles `rules` into a device program.
pub(crate) fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU64_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            LinuxDeviceType::B => Some(DEV_BLOCK),
            // Pipes are no device the cgroup is asked about.
            LinuxDeviceType::P => continue,
        };
        let access = access_bits(rule.access().as_deref());
        if access == 0 {
            continue;
        }
        // Each test jumps to the next block on mismatch (`to_next` lists
        // them; their offsets are set once the block's length is known).
        let mut block: Vec<Insn> = Vec::new();
        let mut to_next = Vec::new();
        let mut skip_unless = |block: &mut Vec<Insn>, i: Insn| {
            to_next.push(block.len());
            block.push(i);
        };
        if let Some(t) = typ {
            skip_unless(&mut block, insn(JMP_JNE_K, R2, 0, 0, t));
        }
        if access != ACC_ALL {
            if rule.allow() {
                // Mismatch if anything asked for is outside the rule.
                skip_unless(&mut block, insn(JMP_JSET_K, R3, 0, 0, !access & ACC_ALL));
            } else {
                // Mismatch if nothing asked for is in the rule.
                block.push(insn(JMP_JSET_K, R3, 0, 1, access));
                skip_unless(&mut block, insn(JMP_JA, 0, 0, 0, 0));
            }
        }
        for (n, reg) in [(rule.major(), R4), (rule.minor(), R5)] {
            if let Some(n) = n.filter(|n| *n >= 0) {
                skip_unless(&mut block, insn(JMP_JNE_K, reg, 0, 0, n as i32));
            }
        }
        block.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow())));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        let unconditional = to_next.is_empty();
        for i in to_next {
            block[i].off = (len - i - 1) as i16;
        }
        p.extend(block);
        if unconditional {
            // It matches everything: the rules before it never decide (and
            // the verifier refuses unreachable code).
            return p;
        }
    }
    // No rule matched: allowed, as a fresh v1 cgroup inherits allow-all.
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// Loads `prog` and attaches it to the cgroup v2 directory `dir`.
///
/// # Errors
/// If the kernel refuses to load (with its verifier log) or to attach it.
pub(crate) fn attach(dir: &std::path::Path, prog: &[Insn]) -> std::io::Result<()> {
    let cg = std::fs::File::open(dir)?;
    let fd = crate::sys::bpf_load_device_prog(prog)?;
    crate::sys::bpf_attach_device_prog(&cg, &fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs a program the way the kernel would, for the opcodes `program`
    /// emits (no verifier: the layout is what is tested here).
    fn run(p: &[Insn], typ: i32, major: u32, minor: u32, access: i32) -> bool {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU64_AND_K => r[dst] &= imm,
                ALU64_RSH_K => r[dst] >>= imm,
                ALU64_MOV_K => r[dst] = imm,
                JMP_JNE_K if r[dst] != imm => pc += i.off as usize,
                JMP_JSET_K if r[dst] & imm != 0 => pc += i.off as usize,
                JMP_JNE_K | JMP_JSET_K => {}
                JMP_JA => pc += i.off as usize,
                JMP_EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        major: i64,
        minor: i64,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .major(major)
            .minor(minor)
            .access(acc)
            .build()
            .unwrap()
    }

    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn deny_all_then_allow_list() {
        use LinuxDeviceType::{A, B, C};
        let p = program(&[
            rule(false, A, -1, -1, "rwm"),
            rule(true, C, 1, 3, "rwm"),
            rule(true, C, 136, -1, "rw"),
            rule(true, C, 10, 200, "r"),
        ]);
        assert!(run(&p, DEV_CHAR, 1, 3, RW));
        assert!(run(&p, DEV_CHAR, 1, 3, ACC_MKNOD));
        assert!(!run(&p, DEV_BLOCK, 1, 3, ACC_READ), "type checked");
        assert!(!run(&p, DEV_CHAR, 1, 5, ACC_READ), "minor checked");
        assert!(run(&p, DEV_CHAR, 136, 7, RW), "any minor");
        assert!(!run(&p, DEV_CHAR, 136, 7, ACC_MKNOD), "m not granted");
        assert!(run(&p, DEV_CHAR, 10, 200, ACC_READ));
        assert!(!run(&p, DEV_CHAR, 10, 200, RW), "w not granted");
        assert!(!run(&p, DEV_BLOCK, 8, 0, ACC_READ));
        let _ = B;
    }

    #[test]
    fn the_last_matching_rule_decides() {
        use LinuxDeviceType::{A, C};
        let p = program(&[rule(true, A, -1, -1, "rwm"), rule(false, C, 1, 5, "w")]);
        assert!(run(&p, DEV_CHAR, 1, 5, ACC_READ), "r untouched by a w deny");
        assert!(!run(&p, DEV_CHAR, 1, 5, ACC_WRITE));
        assert!(!run(&p, DEV_CHAR, 1, 5, RW), "a deny of w denies rw");
        assert!(run(&p, DEV_BLOCK, 1, 5, ACC_WRITE));
        let p = program(&[rule(false, C, 1, 5, "rwm"), rule(true, C, 1, 5, "r")]);
        assert!(run(&p, DEV_CHAR, 1, 5, ACC_READ));
        assert!(!run(&p, DEV_CHAR, 1, 5, ACC_WRITE));
    }

    #[test]
    fn nothing_follows_a_rule_that_matches_everything() {
        use LinuxDeviceType::{A, C};
        let p = program(&[rule(true, C, 1, 3, "rwm"), rule(false, A, -1, -1, "rwm")]);
        // The loads, the rule's two instructions, nothing unreachable.
        assert_eq!(p.len(), 8, "{p:?}");
        assert!(!run(&p, DEV_CHAR, 1, 3, ACC_READ));
    }

    #[test]
    fn no_rules_allow_everything() {
        let p = program(&[]);
        assert!(run(&p, DEV_CHAR, 1, 3, RW));
        assert!(run(&p, DEV_BLOCK, 8, 0, ACC_MKNOD));
    }
}

/* Entry points of the builtin smoke guest. Both loaders leave us in 32-bit
 * protected mode with paging off and flat segments, so the entries only set
 * up a stack and tell main() which protocol brought it here. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* PVH: QEMU's direct kernel boot (pc and microvm) looks for this note in a
 * PT_NOTE segment; its descriptor is the physical entry address. 8 bytes,
 * as QEMU 7.2 reads it as a host size_t whatever the ELF class (readers
 * that take 4 bytes get the same little-endian value). */
	.section .note.pvh, "a"
	.balign 4
	.long 2f - 1f          /* namesz */
	.long 4f - 3f          /* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.long pvh_start
	.long 0
4:

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	/* ebx = physical address of struct hvm_start_info */
	cli
	cld
	movl $stack_top, %esp
	pushl %ebx
	pushl $1               /* GUEST_ENTRY_PVH */
	call guest_main
	jmp halt_forever

	.globl multiboot_start
multiboot_start:
	/* eax = 0x2badb002, ebx = physical address of the multiboot info */
	cli
	cld
	movl $stack_top, %esp
	cmpl $0x2badb002, %eax
	je 1f
	xorl %ebx, %ebx
1:	pushl %ebx
	pushl $2               /* GUEST_ENTRY_MULTIBOOT */
	call guest_main
	jmp halt_forever

/* Ends the run when no ACPI power-off worked: an IDT with limit 0 makes the
 * breakpoint a triple fault, which QEMU turns into a reset, and -no-reboot
 * (or libvirt's on_reboot=destroy) into the end of the VM. */
	.globl triple_fault
triple_fault:
	lidt null_idt
	int3
halt_forever:
	cli
	hlt
	jmp halt_forever

	.section .rodata
	.balign 8
null_idt:
	.word 0
	.long 0

	.section .bss
	.balign 16
	.space 16384
stack_top:

	.section .note.GNU-stack, "", @progbits

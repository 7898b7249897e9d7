/* Multiboot v1 header, linked only into kvmready-guest-multiboot.elf: QEMU
 * (7.2 and later) tries multiboot before PVH, so an image carrying both
 * would never be booted through PVH. Flags 0: the ELF program headers say
 * where to load, and we need nothing but the command line. */
	.section .multiboot, "a"
	.balign 4
	.long 0x1badb002
	.long 0
	.long -0x1badb002

	.section .note.GNU-stack, "", @progbits

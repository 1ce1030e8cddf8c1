/* The inode scheme of fs/tree.c (computed, never allocated) and the rules for
 * target names (auth_name_valid). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs.h"
#include "tap.h"

static const char *kind_name(enum node_kind k)
{
	static const char *const names[] = { "root", "provider dir", "metrics", "target dir", "target file",
					     "session entry", "temp file" };

	return (size_t)k < ELEMENTSOF(names) ? names[k] : "?";
}

/* node → ino (expected value given) → node, comparing what the kind defines. */
static void round_trip(struct node n, fuse_ino_t want_ino)
{
	struct node back;
	fuse_ino_t ino = tree_ino(&n);
	int r;

	is_int(ino, want_ino, "%s (provider %zu, target %u, file %d, slot %u) has ino %#llx", kind_name(n.kind),
	       n.provider, n.target_id, (int)n.file, n.slot, (unsigned long long)want_ino);
	memset(&back, 0x55, sizeof(back));
	r = tree_decode(ino, &back);
	is_int(r, 0, "ino %#llx decodes", (unsigned long long)ino);
	ok(r == 0 && back.kind == n.kind &&
	   (n.kind != NODE_PROVIDER_DIR || back.provider == n.provider) &&
	   (n.kind < NODE_TARGET_DIR || back.target_id == n.target_id) &&
	   (n.kind != NODE_TARGET_FILE || back.file == n.file) &&
	   ((n.kind != NODE_SESSION_ENTRY && n.kind != NODE_STAGING) || back.slot == n.slot),
	   "ino %#llx decodes back to the same %s", (unsigned long long)ino, kind_name(n.kind));
}

static void check_invalid(fuse_ino_t ino, const char *what)
{
	struct node n;

	is_int(tree_decode(ino, &n), -ENOENT, "ino %#llx (%s) → -ENOENT", (unsigned long long)ino, what);
}

static void test_fixed(void)
{
	size_t providers = auth_provider_count();

	ok(providers >= 1, "at least one provider");
	ok(INO_PROVIDER_BASE + providers < 1 << INO_TARGET_SHIFT, "provider dirs (%zu) stay below the first target", providers);
	round_trip((struct node){ .kind = NODE_ROOT }, 1);
	round_trip((struct node){ .kind = NODE_METRICS }, 2);
	for (size_t p = 0; p < providers; p++) {
		round_trip((struct node){ .kind = NODE_PROVIDER_DIR, .provider = p }, 3 + p);
	}
}

static void test_targets(void)
{
	static const uint32_t ids[] = { 1, 2, 3, 4095, 4096, 1u << 20, UINT32_MAX - 1, UINT32_MAX };
	static const unsigned slots[] = { 0, 1, 7, 100, 3999 }; /* MAX_SLOTS in the engine: 4000 */

	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		fuse_ino_t base = (fuse_ino_t)ids[i] << 12;

		round_trip((struct node){ .kind = NODE_TARGET_DIR, .target_id = ids[i] }, base);
		for (unsigned f = 0; f < AUTH_FILES_MAX; f++) {
			round_trip((struct node){ .kind = NODE_TARGET_FILE, .target_id = ids[i], .file = f },
				   base | (fuse_ino_t)(1 + f));
		}
		for (size_t j = 0; j < ELEMENTSOF(slots); j++) {
			round_trip((struct node){ .kind = NODE_SESSION_ENTRY, .target_id = ids[i], .slot = slots[j] },
				   base | (16 + slots[j]));
		}
		for (unsigned j = 0; j < STAGING_MAX; j++) {
			round_trip((struct node){ .kind = NODE_STAGING, .target_id = ids[i], .slot = j },
				   base | (SLOT_STAGING_BASE + j));
		}
	}
	/* Spot values, written out. */
	is_int(tree_ino(&(struct node){ .kind = NODE_TARGET_FILE, .target_id = 3, .file = 3 }), 0x3004,
	       "target 3, its fourth file (aos: status) → 0x3004");
	is_int(tree_ino(&(struct node){ .kind = NODE_TARGET_FILE, .target_id = 1, .file = 0 }), 0x1001,
	       "target 1, its first file → 0x1001");
	is_int(tree_ino(&(struct node){ .kind = NODE_SESSION_ENTRY, .target_id = 2, .slot = 5 }), 0x2015,
	       "target 2, sessions entry 5 → 0x2015");
}

static void test_invalid(void)
{
	size_t providers = auth_provider_count();

	check_invalid(0, "zero");
	for (fuse_ino_t ino = INO_PROVIDER_BASE + providers; ino < INO_PROVIDER_BASE + providers + 16; ino++) {
		check_invalid(ino, "past the last provider");
	}
	check_invalid(0xfff, "last ino below the first target");
	for (unsigned slot = 1 + AUTH_FILES_MAX; slot < SLOT_SESSION_BASE; slot++) {
		check_invalid((fuse_ino_t)7 << 12 | slot, "slot between files and sessions");
	}
	check_invalid(((fuse_ino_t)UINT32_MAX + 1) << 12, "target id 2^32");
	check_invalid((((fuse_ino_t)UINT32_MAX + 1) << 12) | 1, "target id 2^32, token slot");
	check_invalid(UINT64_MAX, "all ones");
}

/* Every ino of the first blocks either fails to decode or re-encodes to itself. */
static void test_exhaustive(void)
{
	size_t providers = auth_provider_count();
	unsigned valid_low = 0, valid_target = 0, mismatches = 0;
	struct node n;

	for (fuse_ino_t ino = 0; ino < 3 << 12; ino++) {
		if (tree_decode(ino, &n) < 0) {
			continue;
		}
		if (tree_ino(&n) != ino) {
			mismatches++;
		}
		if (ino < 1 << 12) {
			valid_low++;
		} else if (ino >> 12 == 2) {
			valid_target++;
		}
	}
	is_int(mismatches, 0, "every decodable ino below 0x3000 re-encodes to itself");
	is_int(valid_low, 2 + providers, "below 0x1000: root, metrics and %zu provider dirs", providers);
	is_int(valid_target, 1 + AUTH_FILES_MAX + (4096 - SLOT_SESSION_BASE), "one target's block: dir, files, session slots");
}

static void check_name(const char *name, int want, const char *what)
{
	is_int(auth_name_valid(name), want, "name %s → %d", what, want);
}

static void test_names(void)
{
	char name[300];

	check_name("aos1.example.net", 0, "'aos1.example.net'");
	check_name("10.0.0.1:8443", 0, "'10.0.0.1:8443'");
	check_name("[::1]:443", 0, "'[::1]:443'");
	check_name("[fe80::1]", 0, "'[fe80::1]'");
	check_name("r640-07", 0, "'r640-07'");
	check_name("a", 0, "'a'");
	check_name("a.", 0, "'a.' (dot not first)");

	memset(name, 'a', 255);
	name[255] = 0;
	check_name(name, 0, "of 255 bytes");
	memset(name, 'a', 256);
	name[256] = 0;
	check_name(name, -ENAMETOOLONG, "of 256 bytes");
	memset(name, 'a', 299);
	name[299] = 0;
	check_name(name, -ENAMETOOLONG, "of 299 bytes");
	memset(name, '.', 256);
	name[256] = 0;
	check_name(name, -ENAMETOOLONG, "of 256 dots (length checked first)");

	check_name("", -EINVAL, "empty");
	check_name(".", -EINVAL, "'.'");
	check_name("..", -EINVAL, "'..'");
	check_name(".hidden", -EINVAL, "'.hidden'");
	check_name("a/b", -EINVAL, "'a/b'");
	check_name("/", -EINVAL, "'/'");
	check_name("a/", -EINVAL, "'a/'");
	check_name("a b", 0, "with a space (AWS profiles may have one)");
	check_name(" a", -EINVAL, "with a leading space");
	check_name("a ", -EINVAL, "with a trailing space");
	check_name("a\tb", -EINVAL, "with a tab");
	check_name("a\nb", -EINVAL, "with a newline");
	check_name("a\x01", -EINVAL, "with 0x01");
	check_name("a\x1f", -EINVAL, "with 0x1f");
	check_name("a\x7f", -EINVAL, "with DEL");
	check_name("a\\b", -EINVAL, "with a backslash");
}

int main(void)
{
	test_fixed();
	test_targets();
	test_invalid();
	test_exhaustive();
	test_names();
	return done();
}

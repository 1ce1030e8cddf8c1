/* The FUSE layer's names and numbers: tree_decode() on an inode number (the
 * first 8 bytes, little-endian), auth_name_valid() and auth_session_id_valid()
 * on the rest as a file name. */
#include <errno.h>

#include "fs.h"
#include "fuzz.h"

#define INO_LEN 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

static void check_ino(fuse_ino_t ino)
{
	struct node n;
	int r = tree_decode(ino, &n);

	if (r < 0) {
		FUZZ_CHECK(r == -ENOENT, "ino %#llx: r=%d", (unsigned long long)ino, r);
		return;
	}
	FUZZ_CHECK(r == 0 && tree_ino(&n) == ino, "ino %#llx decodes to kind %d, which is ino %#llx",
		   (unsigned long long)ino, (int)n.kind, (unsigned long long)tree_ino(&n));
	switch (n.kind) {
	case NODE_PROVIDER_DIR:
		FUZZ_CHECK(n.provider < auth_provider_count(), "provider %zu", n.provider);
		break;
	case NODE_TARGET_DIR:
	case NODE_SESSION_ENTRY:
		FUZZ_CHECK(n.target_id > 0, "target id 0");
		break;
	case NODE_TARGET_FILE:
		FUZZ_CHECK(n.target_id > 0 && n.file < AUTH_FILES_MAX, "target %u file %u", n.target_id, n.file);
		for (n.provider = 0; n.provider < auth_provider_count(); n.provider++) {
			const struct auth_file_info *fi = tree_file_info(&n);
			size_t count;
			const struct auth_file_info *files = auth_provider_files(n.provider, &count);
			FUZZ_CHECK(fi == (n.file < count ? &files[n.file] : NULL), "file %u of provider %zu", n.file,
				   n.provider);
		}
		break;
	default:
		break;
	}
}

/* A name that passes either check becomes one path component under the mount. */
static bool one_component(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= 255 && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static void check_name(const char *name)
{
	int r = auth_name_valid(name);

	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENAMETOOLONG, "auth_name_valid: r=%d", r);
	FUZZ_CHECK(r < 0 || one_component(name), "target name '%s' is not one path component", name);
	FUZZ_CHECK(!auth_session_id_valid(name) || one_component(name), "session id '%s' is not one path component",
		   name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < INO_LEN ? size : INO_LEN;
	_cleanup_free_ char *name = fuzz_strndup(data + n, size - n);
	uint64_t ino = 0;

	for (size_t i = 0; i < n; i++) {
		ino |= (uint64_t)data[i] << (8 * i);
	}
	check_ino(ino);
	check_name(name);
	fuzz_check_secret_heap();
	return 0;
}

/*
 * sgmain.c - main() of every Criterion test executable: Criterion's own,
 * except that a run in which tests were skipped (sgt_require_server
 * without a server, outside CI) and none failed exits SGT_SKIP_CODE, so
 * ctest shows the file as skipped, not passed (SKIP_RETURN_CODE in
 * CMakeLists.txt). Criterion alone exits 0 and says "Tested: 0".
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>
#include <string.h>

#include "sgtest.h"

static size_t skipped, ran;

/* Only the skips of sgt_require_server count: Criterion also reports the
 * tests a --filter leaves out as skipped. */
ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
	ran++;
	if (stats->test_status == CR_STATUS_SKIPPED && stats->message && strstr(stats->message, SGT_SKIP_MARK))
		skipped++;
}

int main(int argc, char *argv[])
{
	struct criterion_test_set *tests = criterion_initialize();
	int result = 0;
	if (criterion_handle_args(argc, argv, true))
		result = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	if (result == 0 && skipped > 0) {
		fprintf(stderr, "%zu of %zu tests skipped: their server is not set up (exit %d)\n", skipped, ran,
			SGT_SKIP_CODE);
		return SGT_SKIP_CODE;
	}
	return result;
}

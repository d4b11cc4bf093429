/* Unit tests for heap_trim.c: when the heap is trimmed (once the load fell to half of a peak worth it).
 * The memory a trim gives back is measured by the soak (tests/soak: RSS back at the baseline after the
 * clients left). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "heap_trim.h"

static void test_due(void **state) {
  (void)state;
  assert_false(heap_trim_due(0, 0));      /* idle from the start: nothing to give back */
  assert_false(heap_trim_due(10, 40));    /* a small peak is not worth a walk of the heap */
  assert_false(heap_trim_due(1000, 1500)); /* most of the peak is still there */
  assert_true(heap_trim_due(750, 1500));  /* half of it left */
  assert_true(heap_trim_due(0, 1500));
  assert_true(heap_trim_due(0, 64));
  assert_false(heap_trim_due(33, 64));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_due)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

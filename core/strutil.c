#include "core/strutil.h"

#include <ctype.h>
#include <string.h>

int lt_edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64) return 1 << 20;
    int d[65][65];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] +
                      (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int best = sub < del ? sub : del;
            d[i][j] = best < ins ? best : ins;
        }
    return d[la][lb];
}

const char *lt_closest(const char *name, const char *const *candidates, size_t n) {
    const char *best = NULL;
    int best_d = 1 << 20;
    for (size_t i = 0; i < n; i++) {
        int dd = lt_edit_distance(name, candidates[i]);
        if (dd < best_d) best_d = dd, best = candidates[i];
    }
    return best && best_d <= (int)strlen(name) / 3 + 1 ? best : NULL;
}

#include <dlfcn.h>
#include <string.h>
int plugins(void) {
  char n[32] = "lib";
  strcat(n, "plug"); strcat(n, "in.so."); strcat(n, "1");
  void *h = dlopen(n, RTLD_NOW);
  if (!h) return -1000;
  int (*f)(void) = (int (*)(void))dlsym(h, "plugin");
  return f ? f() : -2000;
}

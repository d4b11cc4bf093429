/* streamctl: the admin CLI of streamd (INTERFACE.md "Admin socket and streamctl"). Picks the socket
 * (-s, then $STREAMCTL_SOCKET, then /run/streamd/admin.sock) and the mode: one command from the
 * command line, the interactive shell when stdin is a terminal, or commands read from stdin. The exit
 * status is 0 ok, 1 server error, 2 usage error, 3 socket unreachable. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ctl.h"
#include "sd_version.h"

/* Parses streamctl's own options (they stop at the first non-option: the command's options are the
 * command's). Returns -1 to go on, or an exit status. */
static int parse_options(int argc, char **argv, struct ctl *ctl) {
  static const struct option longopts[] = {{"socket", required_argument, NULL, 's'},
                                           {"json", no_argument, NULL, 'j'},
                                           {"help", no_argument, NULL, 'h'},
                                           {"version", no_argument, NULL, 'V'},
                                           {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
    switch (c) {
      case 's':
        ctl->socket_path = optarg;
        break;
      case 'j':
        ctl->json = true;
        break;
      case 'h':
        return ctl_help(stdout, NULL);
      case 'V':
        printf("streamctl %s\n", SD_VERSION);
        return CTL_OK;
      default:
        fprintf(stderr, "Try 'streamctl --help'.\n");
        return CTL_EUSAGE;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  struct ctl ctl = {.socket_path = getenv("STREAMCTL_SOCKET"), .conn = {.fd = -1}};
  if (ctl.socket_path == NULL || ctl.socket_path[0] == '\0') ctl.socket_path = CTL_DEFAULT_SOCKET;
  int rc = parse_options(argc, argv, &ctl);
  if (rc >= 0) return rc;
  if (optind < argc)
    rc = ctl_run(&ctl, argc - optind, argv + optind);
  else if (isatty(STDIN_FILENO))
    rc = ctl_shell(&ctl);
  else
    rc = ctl_script(&ctl, stdin);
  ctl_conn_close(&ctl.conn);
  return rc;
}

/* dossier-supervisor — entry point; everything lives in supervisor.c so that tests
 * can run the same code by re-executing themselves. */
#include "supervisor.h"

int
main (int argc, char **argv)
{
    return supervisor_run (argc, argv);
}

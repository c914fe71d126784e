/* The HDF5 baseline of scripts/bench/chunks.py: a collective parallel-HDF5 write of a local
 * file's bytes.
 *
 *     mpirun -n P h5_write INPUT OUTPUT.h5
 *
 * Every rank reads its contiguous share of INPUT (about 1/P of it, with pread) and writes it
 * collectively (MPI-IO driver, H5FD_MPIO_COLLECTIVE transfers) into a 1-D H5T_NATIVE_UCHAR
 * dataset /data as long as INPUT, at most 256 MiB per rank per call (every rank makes the
 * same number of calls; a rank with nothing left writes an empty selection). Then H5Fflush
 * and close. Rank 0 prints the seconds from after MPI_Init to after H5Fclose (the file is
 * created, written and closed; reading INPUT is inside), as "seconds S bytes N ranks P".
 * No fsync: the caller syncs OUTPUT (scripts/bench/chunks.py does, inside its timing).
 *
 * Build: h5pcc -O2 -o h5_write h5_write.c   (Debian: h5pcc.openmpi, or mpicc with
 * -I/usr/include/hdf5/openmpi -L/usr/lib/x86_64-linux-gnu/hdf5/openmpi -lhdf5). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PIECE
#define PIECE ((uint64_t)256 << 20) /* bytes per rank per H5Dwrite (fits an int count) */
#endif

static int fail(int rank, const char *what, const char *detail)
{
    fprintf(stderr, "h5_write: rank %d: %s%s%s\n", rank, what, detail ? ": " : "",
            detail ? detail : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

static void read_all(int rank, int fd, char *buf, uint64_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, buf, n > ((uint64_t)1 << 30) ? ((uint64_t)1 << 30) : n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail(rank, "read of the input", r < 0 ? strerror(errno) : "short file");
        buf += r;
        n -= (uint64_t)r;
        off += (uint64_t)r;
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -n P h5_write INPUT OUTPUT.h5\n");
        MPI_Finalize();
        return 2;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();

    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) fail(rank, argv[1], strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) fail(rank, argv[1], strerror(errno));
    uint64_t total = (uint64_t)st.st_size;
    /* rank r's share: [total*r/P, total*(r+1)/P) */
    uint64_t lo = total / (uint64_t)size * (uint64_t)rank +
                  total % (uint64_t)size * (uint64_t)rank / (uint64_t)size;
    uint64_t hi = total / (uint64_t)size * (uint64_t)(rank + 1) +
                  total % (uint64_t)size * (uint64_t)(rank + 1) / (uint64_t)size;
    uint64_t mine = hi - lo;
    uint64_t most = (total + (uint64_t)size - 1) / (uint64_t)size;
    uint64_t calls = (most + PIECE - 1) / PIECE; /* the same on every rank */
    uint64_t bufsize = mine < PIECE ? mine : PIECE;
    char *buf = malloc(bufsize ? bufsize : 1);
    if (!buf) fail(rank, "out of memory", NULL);

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL) < 0)
        fail(rank, "H5Pset_fapl_mpio", NULL);
    hid_t file = H5Fcreate(argv[2], H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0) fail(rank, "H5Fcreate", argv[2]);
    hsize_t dims[1] = {(hsize_t)total};
    hid_t fspace = H5Screate_simple(1, dims, NULL);
    hid_t dset =
        H5Dcreate2(file, "/data", H5T_NATIVE_UCHAR, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (fspace < 0 || dset < 0) fail(rank, "H5Dcreate2 /data", NULL);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        fail(rank, "H5Pset_dxpl_mpio", NULL);

    uint64_t done = 0;
    for (uint64_t c = 0; c < calls; c++) {
        uint64_t n = mine - done < PIECE ? mine - done : PIECE;
        hsize_t start[1] = {(hsize_t)(lo + done)}, count[1] = {(hsize_t)n};
        hsize_t mdims[1] = {(hsize_t)(n ? n : 1)};
        hid_t mspace = H5Screate_simple(1, mdims, NULL);
        if (n > 0) {
            read_all(rank, fd, buf, n, lo + done);
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
        } else {
            H5Sselect_none(fspace);
            H5Sselect_none(mspace);
        }
        if (H5Dwrite(dset, H5T_NATIVE_UCHAR, mspace, fspace, dxpl, buf) < 0)
            fail(rank, "H5Dwrite", NULL);
        H5Sclose(mspace);
        done += n;
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) fail(rank, "H5Fflush", NULL);
    H5Pclose(dxpl);
    H5Dclose(dset);
    H5Sclose(fspace);
    H5Pclose(fapl);
    if (H5Fclose(file) < 0) fail(rank, "H5Fclose", argv[2]);
    close(fd);
    free(buf);
    MPI_Barrier(MPI_COMM_WORLD);
    double secs = MPI_Wtime() - t0;
    if (rank == 0)
        printf("seconds %.6f bytes %llu ranks %d\n", secs, (unsigned long long)total, size);
    MPI_Finalize();
    return 0;
}
